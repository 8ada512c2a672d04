import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'

export interface JwksServer {
  issuer: string
  jwksUrl: string
  /** How many times the JWKS was fetched (jose caches it: expect 1 per vmcp). */
  readonly jwksHits: number
  /** An ES256 `at+jwt` for `audience`, valid for an hour. */
  mint(audience: string): Promise<string>
  close(): Promise<void>
}

/**
 * A minimal issuer for Mode A: OIDC discovery and a JWKS with one ES256 key. No authorization
 * endpoints: the bench mints its token directly with the private key.
 */
export async function startJwksServer(): Promise<JwksServer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const kid = 'bench-es256'
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  let issuer = ''
  let jwksHits = 0
  const server = createServer((req, res) => {
    const send = (body: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    if (req.url?.startsWith('/.well-known/')) {
      return send({ issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['ES256'] })
    }
    if (req.url === '/jwks') {
      jwksHits++
      return send({ keys: [jwk] })
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    get jwksHits() {
      return jwksHits
    },
    mint: (audience) =>
      new SignJWT({ scope: 'mcp', client_id: 'vmcp-bench' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject('bench-user')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey),
    async close() {
      server.closeAllConnections()
      await new Promise<void>((ok) => server.close(() => ok()))
    },
  }
}
