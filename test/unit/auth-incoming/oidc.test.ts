import { randomUUID } from 'node:crypto'
import {
  base64url,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWTPayload,
} from 'jose'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  createOidcAuthenticator,
  type AuthResult,
  type IncomingAuthenticator,
} from '../../../src/auth/incoming/index.js'
import type { OidcConfig } from '../../../src/config/schema.js'
import { createLogger } from '../../../src/log/logger.js'
import { Secret } from '../../../src/log/secret.js'
import { basicAuth } from '../../support/http.js'
import { startFakeIdp, type FakeIdp } from './fake-idp.js'

const RESOURCE = 'https://vmcp.example/mcp'
const AUDIENCE = 'https://vmcp.example/mcp'
const PRM_URL = 'https://vmcp.example/.well-known/oauth-protected-resource/mcp'
const CLIENT_ID = 'vmcp-introspector'
const CLIENT_SECRET = `canary-client-secret-${randomUUID()}`

// Every line every authenticator logs in this file, at the most verbose level; the canary at the
// end asserts no token or secret ever reached it.
const logLines: string[] = []
const logger = createLogger({
  level: 'trace',
  destination: { write: (line: string) => void logLines.push(line) },
})
// Both Basic encodings of the credentials (RFC 6749 §2.3.1 escaping varies between clients).
const basicOf = (id: string, secret: string) =>
  Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')
const secrets = new Set<string>([
  CLIENT_SECRET,
  basicAuth(CLIENT_ID, CLIENT_SECRET),
  basicOf(CLIENT_ID, CLIENT_SECRET),
  basicOf(CLIENT_ID, CLIENT_SECRET.replace(/-/g, '%2D')),
])

let idp: FakeIdp
let signingKey: CryptoKey
let rotatedKey: CryptoKey
let rogueKey: CryptoKey
let publicPem: string
let jwkK1: Record<string, unknown>
let jwkK2: Record<string, unknown>

beforeAll(async () => {
  idp = await startFakeIdp()
  const rs = await generateKeyPair('RS256', { extractable: true })
  const es = await generateKeyPair('ES256', { extractable: true })
  const rogue = await generateKeyPair('RS256', { extractable: true })
  signingKey = rs.privateKey
  rotatedKey = es.privateKey
  rogueKey = rogue.privateKey
  publicPem = await exportSPKI(rs.publicKey)
  jwkK1 = { ...(await exportJWK(rs.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
  jwkK2 = { ...(await exportJWK(es.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' }
})

beforeEach(() => {
  idp.reset()
  idp.state.jwks = [jwkK1]
  idp.state.introspectionClient = { id: CLIENT_ID, secret: CLIENT_SECRET }
})

afterAll(async () => {
  await idp.close()
})

function oidcConfig(overrides: Partial<OidcConfig> = {}): OidcConfig {
  return {
    issuer: idp.issuer,
    audience: AUDIENCE,
    resource: RESOURCE,
    jwksUrl: undefined,
    scopes: ['openid', 'mcp:tools'],
    requiredScopes: ['mcp:tools'],
    algorithms: ['RS256', 'ES256'],
    clockSkew: 30_000,
    introspection: undefined,
    ...overrides,
  }
}

function authenticator(overrides: Partial<OidcConfig> = {}): IncomingAuthenticator {
  return createOidcAuthenticator({
    config: oidcConfig(overrides),
    logger,
    resourceMetadataUrl: PRM_URL,
  })
}

const withIntrospection = (overrides: Partial<OidcConfig> = {}) =>
  authenticator({
    introspection: {
      url: idp.url('/introspect'),
      clientId: CLIENT_ID,
      clientSecret: new Secret(CLIENT_SECRET),
      requireAudience: true,
    },
    ...overrides,
  })

const nowSeconds = () => Math.floor(Date.now() / 1000)

interface MintOptions {
  header?: { alg?: string; kid?: string; typ?: string | undefined }
  key?: CryptoKey | Uint8Array
}

async function mint(claims: JWTPayload = {}, options: MintOptions = {}): Promise<string> {
  const now = nowSeconds()
  const payload: JWTPayload = {
    iss: idp.issuer,
    aud: AUDIENCE,
    sub: 'alice',
    iat: now,
    exp: now + 300,
    scope: 'openid mcp:tools',
    ...claims,
  }
  const header = { alg: 'RS256', kid: 'k1', typ: 'at+jwt', ...options.header }
  const token = await new SignJWT(payload)
    .setProtectedHeader(header)
    .sign(options.key ?? signingKey)
  secrets.add(token)
  return token
}

const opaque = () => {
  const token = `opaque-${randomUUID()}`
  secrets.add(token)
  return token
}

const requestWith = (token?: string, url = RESOURCE) =>
  new Request(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

const authenticate = (auth: IncomingAuthenticator, token?: string) =>
  auth.authenticate(requestWith(token))

// Expected challenges are spelled out literally, not built with the code under test.
const NO_CREDENTIALS = `Bearer resource_metadata="${PRM_URL}", scope="openid mcp:tools"`
const invalidToken = (description: string) =>
  `Bearer resource_metadata="${PRM_URL}", scope="openid mcp:tools", error="invalid_token", ` +
  `error_description="${description}"`

async function expectFailure(
  result: AuthResult,
  status: number,
  challenge: string,
  body: Record<string, string>,
): Promise<void> {
  expect(result.ok).toBe(false)
  if (result.ok) return
  const { response } = result
  expect(response.status).toBe(status)
  expect(response.headers.get('www-authenticate')).toBe(challenge)
  expect(response.headers.get('content-type')).toBe('application/json')
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual(body)
}

// An unreachable or misbehaving IdP is an outage, not a bad token: 503 keeps clients' tokens.
async function expectUnavailable(result: AuthResult): Promise<void> {
  expect(result.ok).toBe(false)
  if (result.ok) return
  const { response } = result
  expect(response.status).toBe(503)
  expect(response.headers.get('www-authenticate')).toBeNull()
  expect(response.headers.get('retry-after')).toBe('5')
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual({
    error: 'temporarily_unavailable',
    error_description: 'token verification unavailable',
  })
}

const expectInvalidToken = (result: AuthResult, description: string) =>
  expectFailure(result, 401, invalidToken(description), {
    error: 'invalid_token',
    error_description: description,
  })

function expectIdentity(result: AuthResult) {
  if (!result.ok) throw new Error(`expected success, got ${result.response.status}`)
  return result.identity
}

const logged = () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>)

describe('createOidcAuthenticator: JWT access tokens', () => {
  it('touches no network at construction', async () => {
    authenticator()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(idp.requests).toEqual([])
  })

  it('accepts a valid token and builds the identity', async () => {
    const auth = authenticator()
    const token = await mint()
    const identity = expectIdentity(await authenticate(auth, token))
    expect(identity.subject).toBe('alice')
    expect(identity.issuer).toBe(idp.issuer)
    expect(identity.claims.aud).toBe(AUDIENCE)
    expect(identity.token).toBeInstanceOf(Secret)
    expect(identity.token?.reveal()).toBe(token)
    expect(identity.upstreamTokens).toEqual({})
    expect(JSON.stringify(identity)).not.toContain(token)
    // Discovery and JWKS happen once; the next token reuses both.
    expectIdentity(await authenticate(auth, await mint({ sub: 'bob' })))
    expect(idp.requests).toEqual(['/.well-known/openid-configuration', '/jwks'])
  })

  it('RFC 9068 §4: accepts typ JWT and an absent typ (IdPs that do not send at+jwt)', async () => {
    const auth = authenticator()
    expectIdentity(await authenticate(auth, await mint({}, { header: { typ: 'JWT' } })))
    expectIdentity(await authenticate(auth, await mint({}, { header: { typ: undefined } })))
  })

  it('RFC 9068 §4: rejects a JWT whose typ is not an access-token type', async () => {
    const token = await mint({}, { header: { typ: 'dpop+jwt' } })
    await expectInvalidToken(await authenticate(authenticator(), token), 'unsupported token type')
  })

  it('OIDC Core §2: an ID token (typ or nonce/at_hash/c_hash) is not an access token', async () => {
    const auth = authenticator()
    const id = 'ID token is not an access token'
    for (const typ of ['id_token', 'ID-Token+JWT', 'application/id_token+jwt']) {
      await expectInvalidToken(await authenticate(auth, await mint({}, { header: { typ } })), id)
    }
    for (const claim of ['nonce', 'at_hash', 'c_hash']) {
      for (const typ of ['JWT', 'at+jwt', undefined]) {
        const token = await mint({ [claim]: 'x' }, { header: { typ } })
        await expectInvalidToken(await authenticate(auth, token), id)
      }
    }
  })

  it('RFC 6750 §3.1: invalid_token on expired JWT', async () => {
    const token = await mint({ exp: nowSeconds() - 120 })
    await expectInvalidToken(await authenticate(authenticator(), token), 'token expired')
  })

  it('RFC 7519 §4.1.4: tolerates expiry within the configured clock skew', async () => {
    expectIdentity(await authenticate(authenticator(), await mint({ exp: nowSeconds() - 10 })))
  })

  it('RFC 7519 §4.1.5: invalid_token when nbf is in the future', async () => {
    const token = await mint({ nbf: nowSeconds() + 600 })
    await expectInvalidToken(await authenticate(authenticator(), token), 'token not yet valid')
  })

  it('RFC 9068 §4: invalid_token when aud does not contain our audience', async () => {
    const token = await mint({ aud: 'https://other.example/api' })
    await expectInvalidToken(await authenticate(authenticator(), token), 'audience mismatch')
    const multi = await mint({ aud: ['https://other.example/api', AUDIENCE] })
    expectIdentity(await authenticate(authenticator(), multi))
  })

  it('RFC 9068 §4: invalid_token when iss is not exactly the configured issuer', async () => {
    const token = await mint({ iss: `${idp.issuer}/` })
    await expectInvalidToken(await authenticate(authenticator(), token), 'issuer mismatch')
  })

  it('invalid_token when the kid is not in the JWKS', async () => {
    const token = await mint({}, { header: { kid: 'rogue' }, key: rogueKey })
    await expectInvalidToken(await authenticate(authenticator(), token), 'unknown signing key')
  })

  it('RFC 8725 §3.1: refuses alg none', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))
    const now = nowSeconds()
    const claims = { iss: idp.issuer, aud: AUDIENCE, sub: 'mallory', exp: now + 300, scope: 'x' }
    const token = `${header}.${base64url.encode(JSON.stringify(claims))}.`
    secrets.add(token)
    await expectInvalidToken(await authenticate(authenticator(), token), 'unsupported algorithm')
    // Refused before any discovery or JWKS fetch.
    expect(idp.requests).toEqual([])
  })

  it('RFC 8725 §2.1: refuses HS256 signed with the public key bytes (key confusion)', async () => {
    const key = new TextEncoder().encode(publicPem)
    const token = await mint({}, { header: { alg: 'HS256', kid: 'k1' }, key })
    await expectInvalidToken(await authenticate(authenticator(), token), 'unsupported algorithm')
  })

  it('RFC 7515 §5.2: invalid_token when the payload was tampered with', async () => {
    const [header, , signature] = (await mint()).split('.')
    const now = nowSeconds()
    const forged = { iss: idp.issuer, aud: AUDIENCE, sub: 'admin', exp: now + 300 }
    const token = `${header}.${base64url.encode(JSON.stringify(forged))}.${signature}`
    secrets.add(token)
    await expectInvalidToken(
      await authenticate(authenticator(), token),
      'signature verification failed',
    )
  })

  it('invalid_token when sub is missing', async () => {
    const token = await mint({ sub: undefined })
    await expectInvalidToken(await authenticate(authenticator(), token), 'missing sub claim')
  })

  it('RFC 9068 §2.2: invalid_token when exp is missing', async () => {
    const token = await mint({ exp: undefined })
    await expectInvalidToken(await authenticate(authenticator(), token), 'missing exp claim')
  })

  it('RFC 9449 §7.2: refuses a DPoP-bound token presented as a bearer token', async () => {
    const token = await mint({ cnf: { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' } })
    await expectInvalidToken(
      await authenticate(authenticator(), token),
      'sender-constrained tokens are not supported',
    )
  })

  it('RFC 6750 §3.1: 403 insufficient_scope naming the required scopes', async () => {
    const token = await mint({ scope: 'openid profile' })
    await expectFailure(
      await authenticate(authenticator(), token),
      403,
      `Bearer resource_metadata="${PRM_URL}", scope="mcp:tools", error="insufficient_scope", ` +
        'error_description="insufficient scope"',
      { error: 'insufficient_scope', error_description: 'insufficient scope' },
    )
  })

  it('reads granted scopes from an scp array (Okta) and an scp string (Entra)', async () => {
    const auth = authenticator()
    const okta = await mint({ scope: undefined, scp: ['openid', 'mcp:tools'] })
    const entra = await mint({ scope: undefined, scp: 'mcp:tools offline_access' })
    expectIdentity(await authenticate(auth, okta))
    expectIdentity(await authenticate(auth, entra))
  })

  it('uses a configured jwksUrl without any discovery', async () => {
    const auth = authenticator({ jwksUrl: idp.url('/jwks') })
    expectIdentity(await authenticate(auth, await mint()))
    expect(idp.requests).toEqual(['/jwks'])
  })

  it('RFC 8414 §3: falls back to the oauth-authorization-server document', async () => {
    idp.state.discovery = 'oauth2'
    expectIdentity(await authenticate(authenticator(), await mint()))
    expect(idp.requests).toEqual([
      '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server',
      '/jwks',
    ])
  })

  it('refetches the JWKS for an unknown kid after the cooldown (key rotation)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const auth = authenticator()
      expectIdentity(await authenticate(auth, await mint()))
      idp.state.jwks = [jwkK1, jwkK2]
      const rotated = await mint({}, { header: { alg: 'ES256', kid: 'k2' }, key: rotatedKey })
      // Within jose's 30 s cooldown an unknown kid does not hammer the JWKS endpoint.
      await expectInvalidToken(await authenticate(auth, rotated), 'unknown signing key')
      expect(idp.count('/jwks')).toBe(1)
      vi.setSystemTime(Date.now() + 31_000)
      expectIdentity(await authenticate(auth, rotated))
      expect(idp.count('/jwks')).toBe(2)
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('createOidcAuthenticator: discovery failures', () => {
  it('RFC 8414 §3.3: issuer mismatch in discovery → 503 and a logged error', async () => {
    idp.state.discoveryIssuer = 'https://evil.example'
    const before = logLines.length
    await expectUnavailable(await authenticate(authenticator(), await mint()))
    // The mismatching document is not used: no JWKS fetch, and no second well-known tried.
    expect(idp.requests).toEqual(['/.well-known/openid-configuration'])
    const errors = logged()
      .slice(before)
      .filter((line) => line.level === 50)
    expect(errors).toHaveLength(1)
    expect(errors[0]?.msg).toBe(
      'OIDC discovery failed; tokens cannot be verified until it succeeds',
    )
    expect(errors[0]?.error).toBe(
      'Error: discovery document issuer does not match the configured issuer',
    )
  })

  it('retries a failed discovery after a backoff instead of caching the failure', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      idp.state.discoveryIssuer = 'https://evil.example'
      const auth = authenticator()
      const token = await mint()
      await expectUnavailable(await authenticate(auth, token))
      idp.state.discoveryIssuer = undefined
      // Within the backoff: answered without contacting the IdP again.
      await expectUnavailable(await authenticate(auth, token))
      expect(idp.count('/.well-known/openid-configuration')).toBe(1)
      vi.setSystemTime(Date.now() + 1_500)
      expectIdentity(await authenticate(auth, token))
      expect(idp.count('/.well-known/openid-configuration')).toBe(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it('shares one discovery between concurrent first requests', async () => {
    const auth = authenticator()
    const tokens = await Promise.all([mint(), mint(), mint()])
    const results = await Promise.all(tokens.map((t) => authenticate(auth, t)))
    for (const result of results) expectIdentity(result)
    expect(idp.count('/.well-known/openid-configuration')).toBe(1)
  })
})

describe('createOidcAuthenticator: bearer extraction', () => {
  it('RFC 6750 §3.1: no Authorization header → 401 without an error code', async () => {
    await expectFailure(await authenticate(authenticator()), 401, NO_CREDENTIALS, {
      error: 'invalid_request',
      error_description: 'missing bearer token',
    })
    expect(idp.requests).toEqual([])
  })

  it('RFC 6750 §3.1: another auth scheme counts as no credentials', async () => {
    const request = new Request(RESOURCE, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })
    await expectFailure(await authenticator().authenticate(request), 401, NO_CREDENTIALS, {
      error: 'invalid_request',
      error_description: 'missing bearer token',
    })
  })

  it('RFC 6750 §2.1: a malformed Bearer value → 401 invalid_request', async () => {
    const request = new Request(RESOURCE, { headers: { authorization: 'Bearer a b' } })
    await expectFailure(
      await authenticator().authenticate(request),
      401,
      `Bearer resource_metadata="${PRM_URL}", scope="openid mcp:tools", error="invalid_request", ` +
        'error_description="malformed authorization header"',
      { error: 'invalid_request', error_description: 'malformed authorization header' },
    )
  })

  it('RFC 6750 §2.1: the scheme name is case-insensitive', async () => {
    const request = new Request(RESOURCE, { headers: { authorization: `bearer ${await mint()}` } })
    expectIdentity(await authenticator().authenticate(request))
  })

  it('RFC 6750 §2.3: a token in the access_token query parameter is ignored', async () => {
    const token = await mint()
    const request = requestWith(undefined, `${RESOURCE}?access_token=${token}`)
    await expectFailure(await authenticator().authenticate(request), 401, NO_CREDENTIALS, {
      error: 'invalid_request',
      error_description: 'missing bearer token',
    })
    expect(idp.requests).toEqual([])
  })
})

describe('createOidcAuthenticator: opaque tokens', () => {
  const active = (claims: Record<string, unknown> = {}) => ({
    active: true,
    iss: idp.issuer,
    sub: 'bob',
    aud: AUDIENCE,
    scope: 'mcp:tools',
    client_id: 'some-client',
    token_type: 'Bearer',
    exp: nowSeconds() + 300,
    ...claims,
  })

  it('invalid_token when introspection is not configured', async () => {
    await expectInvalidToken(
      await authenticate(authenticator(), opaque()),
      'token is not a JWT and introspection is not configured',
    )
    expect(idp.requests).toEqual([])
  })

  it('RFC 7662 §2.2: active token → identity, cached (second call makes no request)', async () => {
    const auth = withIntrospection()
    const token = opaque()
    idp.state.introspection.set(token, active())
    const identity = expectIdentity(await authenticate(auth, token))
    expect(identity.subject).toBe('bob')
    expect(identity.issuer).toBe(idp.issuer)
    expect(identity.claims.client_id).toBe('some-client')
    expect(identity.token?.reveal()).toBe(token)
    expectIdentity(await authenticate(auth, token))
    // Introspection needs no discovery: the endpoint is configured.
    expect(idp.requests).toEqual(['/introspect'])
  })

  it('RFC 7662 §2.2: active false → 401 invalid_token', async () => {
    const auth = withIntrospection()
    const token = opaque()
    await expectInvalidToken(await authenticate(auth, token), 'token is not active')
    expect(idp.count('/introspect')).toBe(1)
  })

  it('RFC 7662 §4: a negative result is cached for at most 30 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const auth = withIntrospection()
      const token = opaque()
      await expectInvalidToken(await authenticate(auth, token), 'token is not active')
      idp.state.introspection.set(token, active())
      await expectInvalidToken(await authenticate(auth, token), 'token is not active')
      expect(idp.count('/introspect')).toBe(1)
      vi.setSystemTime(Date.now() + 30_001)
      expectIdentity(await authenticate(auth, token))
      expect(idp.count('/introspect')).toBe(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it('RFC 7662 §4: a positive result is cached no longer than its exp', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const auth = withIntrospection()
      const token = opaque()
      idp.state.introspection.set(token, active({ exp: nowSeconds() + 60 }))
      expectIdentity(await authenticate(auth, token))
      idp.state.introspection.set(token, { active: false })
      vi.setSystemTime(Date.now() + 61_000)
      await expectInvalidToken(await authenticate(auth, token), 'token is not active')
      expect(idp.count('/introspect')).toBe(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it('RFC 7662 §2.2: an active token for another audience or issuer → invalid_token', async () => {
    const auth = withIntrospection()
    const otherAud = opaque()
    const otherIss = opaque()
    idp.state.introspection.set(otherAud, active({ aud: ['https://other.example'] }))
    idp.state.introspection.set(otherIss, active({ iss: 'https://other-idp.example' }))
    await expectInvalidToken(await authenticate(auth, otherAud), 'audience mismatch')
    await expectInvalidToken(await authenticate(auth, otherIss), 'issuer mismatch')
  })

  it('RFC 8707 §2: an active token without aud → invalid_token unless requireAudience is false', async () => {
    const token = opaque()
    idp.state.introspection.set(token, active({ aud: undefined }))
    await expectInvalidToken(await authenticate(withIntrospection(), token), 'token has no audience')
    const lenient = withIntrospection({
      introspection: {
        url: idp.url('/introspect'),
        clientId: CLIENT_ID,
        clientSecret: new Secret(CLIENT_SECRET),
        requireAudience: false,
      },
    })
    expect(expectIdentity(await authenticate(lenient, token)).subject).toBe('bob')
  })

  it('RFC 7662 §2.2: an active but expired token → invalid_token', async () => {
    const auth = withIntrospection()
    const token = opaque()
    idp.state.introspection.set(token, active({ exp: nowSeconds() - 120 }))
    await expectInvalidToken(await authenticate(auth, token), 'token expired')
  })

  it('RFC 6750 §3.1: an introspected token without the required scope → 403', async () => {
    const auth = withIntrospection()
    const token = opaque()
    idp.state.introspection.set(token, active({ scope: 'openid' }))
    const result = await authenticate(auth, token)
    expect(result.ok ? 200 : result.response.status).toBe(403)
  })

  it('an introspection endpoint refusing our client → 503 and a logged error', async () => {
    idp.state.introspectionClient = { id: CLIENT_ID, secret: 'another-secret' }
    const before = logLines.length
    const auth = withIntrospection()
    const token = opaque()
    idp.state.introspection.set(token, active())
    await expectUnavailable(await authenticate(auth, token))
    const errors = logged()
      .slice(before)
      .filter((line) => line.level === 50)
    expect(errors.map((line) => line.msg)).toEqual(['token introspection failed'])
    // Failures are not cached: the next request introspects again.
    idp.state.introspectionClient = { id: CLIENT_ID, secret: CLIENT_SECRET }
    expectIdentity(await authenticate(auth, token))
  })
})

describe('createOidcAuthenticator: protected-resource metadata', () => {
  it('RFC 9728 §2: resource, authorization_servers, scopes_supported, bearer_methods', () => {
    expect(authenticator().protectedResourceMetadata()).toEqual({
      resource: RESOURCE,
      authorization_servers: [idp.issuer],
      scopes_supported: ['openid', 'mcp:tools'],
      bearer_methods_supported: ['header'],
    })
  })

  it('RFC 9728 §2: omits scopes_supported when no scopes are configured', () => {
    expect(authenticator({ scopes: [] }).protectedResourceMetadata()).toEqual({
      resource: RESOURCE,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
    })
  })

  it('omits scope from the challenge when no scopes are configured', async () => {
    const result = await authenticate(authenticator({ scopes: [] }))
    expect(result.ok ? '' : result.response.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${PRM_URL}"`,
    )
  })
})

// Runs last (tests in a file run in order): every scenario above logged into logLines at trace.
describe('log canary', () => {
  it('no token and no client secret appears in any log line', () => {
    const all = logLines.join('\n')
    expect(logLines.length).toBeGreaterThan(20)
    // The rejections were logged, with fingerprints standing in for tokens.
    expect(all).toContain('bearer token rejected')
    expect(all).toContain('tokenFingerprint')
    expect(secrets.size).toBeGreaterThan(30)
    for (const secret of secrets) expect(all).not.toContain(secret)
    // Nor any JWT-looking fragment (a token's header or payload segment).
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/)
  })
})
