import { createPublicKey } from 'node:crypto'
import { SignJWT, decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type ConfidentialClient, type Idp, type RegisteredClient } from '../support/idp.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const PUBLIC = 'http://127.0.0.1:4483'
const RESOURCE = `${PUBLIC}/mcp`
const PRM_URL = `${PUBLIC}/.well-known/oauth-protected-resource/mcp`
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')

describe('Mode A: tokens from a real OpenID provider (oidc-provider)', () => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp
  let introspector: ConfidentialClient
  let exchanger: ConfidentialClient

  const post = (token?: string, body: unknown = INIT, extra: Record<string, string> = {}) =>
    fetch(gw.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...extra,
      },
      body: JSON.stringify(body),
    })

  async function expect401(token: string | undefined, error?: string, description?: string) {
    const res = await post(token)
    expect(res.status).toBe(401)
    const challenge = res.headers.get('www-authenticate') ?? ''
    expect(challenge.startsWith(`Bearer resource_metadata="${PRM_URL}", scope="openid mcp"`)).toBe(true)
    if (error) {
      expect(challenge).toContain(`error="${error}"`)
      const body = (await res.json()) as { error: string; error_description: string }
      expect(body.error).toBe(error)
      if (description) {
        expect(body.error_description).toBe(description)
        expect(challenge).toContain(`error_description="${description}"`)
      }
    } else expect(challenge).not.toContain('error=')
    return challenge
  }

  /** An opaque (introspected) access token issued by the IdP for `resource`. */
  async function opaqueToken(resource?: string): Promise<string> {
    const client = await idp.registerClient({ token_endpoint_auth_method: 'none' })
    idp.opaqueClients.add(client.client_id)
    const { access_token } = await idp.getAccessToken({ client, ...(resource ? { resource } : {}) })
    expect(access_token.split('.')).toHaveLength(1)
    return access_token
  }

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    introspector = await idp.registerConfidentialClient({ client_name: 'vmcp-introspection' })
    exchanger = await idp.registerConfidentialClient({ client_name: 'vmcp-exchange' })
    gw = await startVmcp(
      {
        server: { publicUrl: PUBLIC },
        backends: [
          { name: 'plain', transport: 'streamable-http', url: backend.url },
          { name: 'keyed', transport: 'streamable-http', url: backend.url },
          { name: 'exchanged', transport: 'streamable-http', url: backend.url },
        ],
        incomingAuth: {
          type: 'oidc',
          oidc: {
            issuer: idp.issuer,
            audience: RESOURCE,
            resource: RESOURCE,
            scopes: ['openid', 'mcp'],
            requiredScopes: ['mcp'],
            introspection: { url: idp.metadata.introspection_endpoint, clientId: introspector.client_id, clientSecret: { env: 'INTROSPECTION_SECRET' } },
          },
        },
        outgoingAuth: {
          backends: {
            keyed: { type: 'header_injection', headerInjection: { headerName: 'X-API-Key', value: { env: 'BACKEND_KEY' } } },
            exchanged: {
              type: 'token_exchange',
              tokenExchange: { tokenUrl: idp.metadata.token_endpoint, clientId: exchanger.client_id, clientSecret: { env: 'EXCHANGE_SECRET' }, audience: 'backend-api', scopes: ['mcp'] },
            },
          },
        },
      },
      {
        env: {
          INTROSPECTION_SECRET: introspector.client_secret,
          EXCHANGE_SECRET: exchanger.client_secret,
          BACKEND_KEY: 'key-123',
        },
      },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('accepts a JWT access token issued for this resource; the client token never reaches a backend', async () => {
    const { access_token } = await idp.getAccessToken({ resource: RESOURCE })
    const client = await connectClient(gw.url, { token: access_token })
    const seen = JSON.parse(await callText(client, 'plain_whoami')) as Record<string, string | null>
    expect(seen.authorization).toBeNull()
    await client.close()
  })

  it('header_injection: the backend receives the configured header, and only that', async () => {
    const { access_token } = await idp.getAccessToken({ resource: RESOURCE })
    const client = await connectClient(gw.url, { token: access_token })
    const seen = JSON.parse(await callText(client, 'keyed_whoami')) as Record<string, string | null>
    expect(seen['x-api-key']).toBe('key-123')
    expect(seen.authorization).toBeNull()
    await client.close()
  })

  it('token_exchange: RFC 8693 at the real token endpoint, cached per subject', async () => {
    const { access_token } = await idp.getAccessToken({ resource: RESOURCE })
    const client = await connectClient(gw.url, { token: access_token })
    const before = idp.exchanges.length
    const seen = JSON.parse(await callText(client, 'exchanged_whoami')) as Record<string, string>
    const exchanged = (seen.authorization ?? '').replace(/^Bearer /, '')
    expect(exchanged).not.toBe(access_token)
    const claims = await idp.verifyAccessToken(exchanged, 'backend-api')
    expect(claims.sub).toBe('alice')
    await callText(client, 'exchanged_whoami')
    expect(idp.exchanges.length - before).toBe(1)
    expect(idp.exchanges.at(-1)).toMatchObject({ clientId: exchanger.client_id, audience: 'backend-api', subjectSub: 'alice' })
    await client.close()
  })

  it('RFC 7662: accepts an opaque token issued for this resource through introspection', async () => {
    const token = await opaqueToken(RESOURCE)
    expect((await idp.introspect(token)).aud).toBe(RESOURCE)
    const client = await connectClient(gw.url, { token })
    expect((await client.listTools()).tools.length).toBeGreaterThan(0)
    await client.close()
  })

  it('RFC 7662 §2.2 + RFC 8707: an introspected token with no audience → 401 invalid_token', async () => {
    // Any active token of the issuer, issued to any client for no resource in particular.
    const token = await opaqueToken()
    const introspected = await idp.introspect(token)
    expect(introspected.active).toBe(true)
    expect(introspected.aud).toBeUndefined()
    await expect401(token, 'invalid_token', 'token has no audience')
  })

  it('RFC 7662 §2.2 + RFC 8707: an introspected token for another resource → 401 invalid_token', async () => {
    const token = await opaqueToken('https://other.example/mcp')
    expect((await idp.introspect(token)).aud).toBe('https://other.example/mcp')
    await expect401(token, 'invalid_token', 'audience mismatch')
  })

  it('OIDC Core §2: ID-token-shaped JWTs for this audience are refused; access tokens pass', async () => {
    const id = 'ID token is not an access token'
    // Header typ naming an ID token (RFC 7515 §4.1.9: case-insensitive, application/ optional).
    for (const typ of ['id_token', 'id-token+jwt', 'application/ID-TOKEN+JWT']) {
      await expect401(await idp.mintAccessToken({ aud: RESOURCE }, { header: { typ } }), 'invalid_token', id)
    }
    // A plain JWT carrying an ID token's claims (OIDC Core §2, §3.1.3.6, §3.3.2.11).
    for (const claim of [{ nonce: 'n-0S6_WzA2Mj' }, { at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q' }, { c_hash: 'LDktKdoQak3Pk0cnXxCltA' }]) {
      for (const typ of ['JWT', 'at+jwt', undefined]) {
        await expect401(await idp.mintAccessToken({ aud: RESOURCE, ...claim }, { header: { typ } }), 'invalid_token', id)
      }
    }
    // RFC 9068 at+jwt and a plain JWT access token without those claims still pass.
    for (const typ of ['at+jwt', 'JWT', undefined]) {
      const res = await post(await idp.mintAccessToken({ aud: RESOURCE }, { header: { typ } }))
      expect(res.status).toBe(200)
      await res.body?.cancel()
    }
  })

  it('RFC 6750 §3.1: no token → 401 with resource_metadata and scope, no error code', async () => {
    await expect401(undefined)
  })

  it('RFC 6750 §3.1: expired, wrong aud, wrong iss and unknown kid → 401 invalid_token', async () => {
    await expect401(await idp.mintAccessToken({ aud: RESOURCE }, { expiresIn: -300 }), 'invalid_token')
    await expect401(await idp.mintAccessToken({ aud: 'https://other.example/mcp' }), 'invalid_token')
    await expect401(await idp.mintAccessToken({ aud: RESOURCE, iss: 'http://127.0.0.1:1' }), 'invalid_token')
    await expect401(await idp.mintAccessToken({ aud: RESOURCE }, { header: { kid: 'not-a-key' } }), 'invalid_token')
  })

  it('RFC 8725 §2.1: alg none and HS256 keyed with the public key are refused', async () => {
    const claims = { iss: idp.issuer, sub: 'alice', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) + 300, scope: 'mcp' }
    await expect401(`${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`, 'invalid_token')
    const pem = createPublicKey({ key: idp.signingKey.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    const confused = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: idp.signingKey.kid })
      .sign(new TextEncoder().encode(String(pem)))
    await expect401(confused, 'invalid_token')
  })

  it('RFC 7515 §5.2: a tampered payload fails signature verification', async () => {
    const good = await idp.mintAccessToken({ aud: RESOURCE })
    const [h, , s] = good.split('.')
    const forged = b64({ iss: idp.issuer, sub: 'mallory', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) + 300, scope: 'mcp' })
    await expect401(`${h}.${forged}.${s}`, 'invalid_token')
  })

  it('RFC 6750 §3.1: a token without the required scope → 403 insufficient_scope', async () => {
    const res = await post(await idp.mintAccessToken({ aud: RESOURCE, scope: 'openid' }))
    expect(res.status).toBe(403)
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${PRM_URL}", scope="mcp", error="insufficient_scope", error_description="insufficient scope"`,
    )
  })

  it('RFC 9728 §3: serves the protected-resource document at both well-known paths, with CORS', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const res = await fetch(`${gw.base}${path}`, { headers: { origin: 'https://app.example' } })
      expect(res.status).toBe(200)
      expect(res.headers.get('access-control-allow-origin')).toBe('*')
      expect(await res.json()).toEqual({
        resource: RESOURCE,
        authorization_servers: [idp.issuer],
        scopes_supported: ['openid', 'mcp'],
        bearer_methods_supported: ['header'],
      })
    }
    const other = await fetch(`${gw.base}/.well-known/openid-configuration`)
    expect(other.status).toBe(404)
    expect(await other.json()).toEqual({ error: 'not_found' })
  })

  it('binds a session to the identity that created it: another user gets 404', async () => {
    const alice = await idp.getAccessToken({ resource: RESOURCE, user: 'alice' })
    const bob = await idp.getAccessToken({ resource: RESOURCE, user: 'bob' })
    const created = await post(alice.access_token)
    const sid = created.headers.get('mcp-session-id') ?? ''
    expect(sid).not.toBe('')
    await created.body?.cancel()
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }
    const hdr = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' }
    const asBob = await post(bob.access_token, list, hdr)
    expect(asBob.status).toBe(404)
    expect(await asBob.json()).toEqual({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null })
    const asAlice = await post(alice.access_token, list, hdr)
    expect(asAlice.status).toBe(200)
    await asAlice.body?.cancel()
  })
})

describe('Mode A: an OIDC ID token whose aud is the configured audience', () => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp
  let client: RegisteredClient

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    client = await idp.registerClient({ token_endpoint_auth_method: 'none' })
    // The Entra-style setup where the API's audience is the client id: ID tokens issued to
    // that client carry exactly this audience.
    gw = await startVmcp({
      server: { publicUrl: PUBLIC },
      backends: [{ name: 'plain', transport: 'streamable-http', url: backend.url }],
      incomingAuth: {
        type: 'oidc',
        oidc: { issuer: idp.issuer, audience: client.client_id, resource: RESOURCE },
      },
    })
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('warns at startup that the audience is not the resource URL', () => {
    const warning = gw.logs.map((l) => JSON.parse(l) as { level: number; path?: string; msg: string })
      .find((l) => l.path === 'incomingAuth.oidc.audience')
    expect(warning?.level).toBe(40)
    expect(warning?.msg).toContain(RESOURCE)
  })

  it('OIDC Core §2: the ID token presented as a bearer → 401 invalid_token; an access token for the same audience passes', async () => {
    const tokens = await idp.getAccessToken({ client, scope: 'openid mcp', nonce: 'n-0S6_WzA2Mj' })
    const idToken = tokens.id_token ?? ''
    const claims = decodeJwt(idToken)
    expect(claims).toMatchObject({ aud: client.client_id, iss: idp.issuer, sub: 'alice', nonce: 'n-0S6_WzA2Mj' })
    const rejected = await connectClient(gw.url, { token: idToken }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(rejected).toBeDefined()
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${idToken}` },
      body: JSON.stringify(INIT),
    })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token", error_description="ID token is not an access token"')
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'ID token is not an access token' })

    const good = await connectClient(gw.url, { token: await idp.mintAccessToken({ aud: client.client_id }) })
    expect((await good.listTools()).tools.length).toBeGreaterThan(0)
    await good.close()
  })
})
