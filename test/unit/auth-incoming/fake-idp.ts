// A tiny identity provider on 127.0.0.1 for the incoming-auth unit tests: discovery metadata,
// a JWKS, and an RFC 7662 introspection endpoint, all driven by mutable state the tests set.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { JWK } from 'jose'

export interface FakeIdpState {
  /** `issuer` served in discovery; defaults to the real one. */
  discoveryIssuer: string | undefined
  /** Which well-known documents answer: the other one 404s. */
  discovery: 'oidc' | 'oauth2'
  jwks: JWK[]
  /** token → introspection response body. Unknown tokens are `{ active: false }`. */
  introspection: Map<string, Record<string, unknown>>
  /** Client credentials the introspection endpoint demands (HTTP Basic). */
  introspectionClient: { id: string; secret: string } | undefined
}

export interface FakeIdp {
  issuer: string
  url(path: string): string
  state: FakeIdpState
  /** Paths requested, in order (never bodies: those hold tokens). */
  requests: string[]
  count(path: string): number
  reset(): void
  close(): Promise<void>
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding; clients differ in
// how much they escape, so compare decoded values.
function clientMatches(
  header: string | undefined,
  expected: { id: string; secret: string } | undefined,
): boolean {
  if (!header?.startsWith('Basic ') || !expected) return false
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return false
  const unescape = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
  return (
    unescape(decoded.slice(0, colon)) === expected.id &&
    unescape(decoded.slice(colon + 1)) === expected.secret
  )
}

export async function startFakeIdp(): Promise<FakeIdp> {
  const fresh = (): FakeIdpState => ({
    discoveryIssuer: undefined,
    discovery: 'oidc',
    jwks: [],
    introspection: new Map(),
    introspectionClient: undefined,
  })
  const state = fresh()
  const requests: string[] = []
  let issuer = ''

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', issuer).pathname
    requests.push(path)
    const metadata = () => ({
      issuer: state.discoveryIssuer ?? issuer,
      jwks_uri: `${issuer}/jwks`,
      introspection_endpoint: `${issuer}/introspect`,
      response_types_supported: ['code'],
    })
    if (path === '/.well-known/openid-configuration' && state.discovery === 'oidc') {
      return send(res, 200, metadata())
    }
    if (path === '/.well-known/oauth-authorization-server' && state.discovery === 'oauth2') {
      return send(res, 200, metadata())
    }
    if (path === '/jwks') return send(res, 200, { keys: state.jwks })
    if (path === '/introspect' && req.method === 'POST') {
      void readBody(req).then((text) => {
        if (!clientMatches(req.headers.authorization, state.introspectionClient)) {
          return send(res, 401, { error: 'invalid_client' })
        }
        const token = new URLSearchParams(text).get('token') ?? ''
        send(res, 200, state.introspection.get(token) ?? { active: false })
      })
      return
    }
    send(res, 404, { error: 'not_found' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    issuer,
    url: (path) => `${issuer}${path}`,
    state,
    requests,
    count: (path) => requests.filter((p) => p === path).length,
    reset() {
      Object.assign(state, fresh())
      requests.length = 0
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}
