import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createAuthorizeApp,
  PENDING_AUTHORIZATION_KIND,
  pendingId,
  type AuthorizeConfig,
  type PendingAuthorization,
} from '../../../../src/authserver/authorize-endpoint.js'
import { createBrowserCookies } from '../../../../src/authserver/consent.js'
import type { OAuthClient } from '../../../../src/authserver/contracts.js'
import { UpstreamAuthError, type UpstreamClient } from '../../../../src/authserver/upstreams.js'
import { createLogger } from '../../../../src/log/index.js'
import {
  createMemoryStore,
  createSealer,
  StorageUnavailableError,
  type Store,
} from '../../../../src/storage/index.js'
import { pkcePair } from './harness.js'

const ISSUER = 'https://vmcp.example.com'
const RESOURCE = 'https://vmcp.example.com/mcp'
const REDIRECT = 'https://app.example.com/cb'
const UPSTREAM_AUTH = 'https://idp.example.com/authorize'

const client = (clientId: string, redirectUris: string[], extra: Partial<OAuthClient> = {}): OAuthClient => ({
  clientId,
  tokenEndpointAuthMethod: 'none',
  redirectUris,
  grantTypes: ['authorization_code', 'refresh_token'],
  responseTypes: ['code'],
  createdAt: 0,
  ...extra,
})

const clients = new Map<string, OAuthClient>([
  ['app', client('app', [REDIRECT])],
  ['two-uris', client('two-uris', [REDIRECT, 'https://app.example.com/other'])],
  ['native', client('native', ['http://127.0.0.1/callback'])],
  ['narrow', client('narrow', [REDIRECT], { scope: 'openid' })],
  ['no-code', client('no-code', [REDIRECT], { grantTypes: ['refresh_token'] })],
])

let store: Store
let upstreamDown: boolean
let registryDown: boolean

const upstream: UpstreamClient = {
  name: 'corp',
  type: 'oidc',
  async authorizationUrl({ state }) {
    if (upstreamDown) throw new UpstreamAuthError('corp', 'server_error', 'discovery failed')
    const url = new URL(UPSTREAM_AUTH)
    url.searchParams.set('state', state)
    return url
  },
  exchangeCode: () => Promise.reject(new Error('not used')),
  refresh: () => Promise.reject(new Error('not used')),
  revoke: async () => false,
}

// These tests are about request validation, so the clients are pre-registered first-party ones
// the operator trusts (no consent page, RFC 6749 §4.1.2.1 error redirects). consent.test.ts covers
// everyone else.
const TRUSTED = ['app', 'two-uris', 'native', 'narrow', 'no-code', 'query']

function appFor(config: Partial<AuthorizeConfig> = {}) {
  return createAuthorizeApp({
    config: {
      issuer: ISSUER,
      allowedAudiences: [RESOURCE],
      scopesSupported: ['openid', 'profile', 'email', 'offline_access'],
      tokenLifespans: {
        accessToken: 3_600_000,
        refreshToken: 604_800_000,
        authCode: 600_000,
        refreshMax: 2_592_000_000,
      },
      consent: { rememberFor: 86_400_000, trustedClients: TRUSTED },
      upstreams: [],
      ...config,
    },
    registry: {
      async getClient(id) {
        if (registryDown) throw new StorageUnavailableError()
        return clients.get(id)
      },
    },
    upstreams: [upstream],
    store,
    cookies: createBrowserCookies({ issuer: ISSUER, sealer: createSealer(randomBytes(32)), rememberForMs: 86_400_000 }),
    logger: createLogger({ level: 'silent' }),
  })
}

const { challenge } = pkcePair()
const DEFAULTS: Record<string, string> = {
  response_type: 'code',
  client_id: 'app',
  redirect_uri: REDIRECT,
  code_challenge: challenge,
  code_challenge_method: 'S256',
  scope: 'openid profile',
  state: 'xyz',
}

/** GET /oauth/authorize with DEFAULTS overridden (undefined removes; arrays repeat). */
async function authorize(
  overrides: Record<string, string | string[] | undefined> = {},
  app = appFor(),
) {
  const url = new URL(`${ISSUER}/oauth/authorize`)
  for (const [k, v] of Object.entries({ ...DEFAULTS, ...overrides })) {
    if (v === undefined) continue
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, item)
  }
  const res = await app.request(url.href)
  const location = res.headers.get('location')
  return {
    status: res.status,
    cacheControl: res.headers.get('cache-control'),
    location: location === null ? undefined : new URL(location),
    rawLocation: location,
    body: res.headers.get('content-type')?.includes('json') ? ((await res.json()) as Record<string, string>) : undefined,
  }
}

/** Expects a 302 back to `redirect` carrying exactly these parameters. */
function expectClientError(
  res: Awaited<ReturnType<typeof authorize>>,
  error: string,
  description: string,
  redirect = REDIRECT,
) {
  expect(res.status).toBe(302)
  expect(res.location!.origin + res.location!.pathname).toBe(redirect)
  expect(Object.fromEntries(res.location!.searchParams)).toEqual({
    error,
    error_description: description,
    state: 'xyz',
    iss: ISSUER,
  })
}

function expectRendered(res: Awaited<ReturnType<typeof authorize>>, error: string, description: string) {
  expect(res.status).toBe(400)
  expect(res.location).toBeUndefined()
  expect(res.cacheControl).toBe('no-store')
  expect(res.body).toEqual({ error, error_description: description })
}

beforeEach(() => {
  store = createMemoryStore()
  upstreamDown = false
  registryDown = false
})

afterEach(async () => {
  await store.close()
})

describe('RFC 6749 §4.1.2.1: errors before client and redirect URI are valid are never redirected', () => {
  it('unknown client → 400, no redirect', async () => {
    expectRendered(await authorize({ client_id: 'nobody' }), 'invalid_client', 'unknown client_id')
  })

  it('missing client_id → 400', async () => {
    expectRendered(await authorize({ client_id: undefined }), 'invalid_request', 'client_id is required')
  })

  it('repeated client_id → 400 (RFC 6749 §3.1)', async () => {
    expectRendered(await authorize({ client_id: ['app', 'app'] }), 'invalid_request', 'client_id must not be repeated')
  })

  it('OAuth 2.1 §2.3.1: redirect_uri mismatch → 400, no redirect', async () => {
    expectRendered(
      await authorize({ redirect_uri: 'https://app.example.com/cb/other' }),
      'invalid_request',
      'redirect_uri is not registered for this client',
    )
  })

  it('RFC 9700 §4.11 open redirect: https://evil.example/cb → 400, no redirect', async () => {
    const res = await authorize({ redirect_uri: 'https://evil.example/cb', response_type: 'token' })
    expectRendered(res, 'invalid_request', 'redirect_uri is not registered for this client')
  })

  it('a bad redirect_uri wins over every later error (even unknown PKCE method)', async () => {
    const res = await authorize({ redirect_uri: 'https://evil.example/cb', code_challenge_method: 'plain' })
    expect(res.status).toBe(400)
    expect(res.location).toBeUndefined()
  })

  it('OAuth 2.1 §2.3.2: redirect_uri may be omitted only with exactly one registered', async () => {
    const ok = await authorize({ redirect_uri: undefined })
    expect(ok.status).toBe(302)
    expect(ok.location!.href.startsWith(UPSTREAM_AUTH)).toBe(true)
    expectRendered(
      await authorize({ client_id: 'two-uris', redirect_uri: undefined }),
      'invalid_request',
      'redirect_uri is required',
    )
  })

  it('storage down while looking up the client → 503 temporarily_unavailable', async () => {
    registryDown = true
    const res = await authorize()
    expect(res.status).toBe(503)
    expect(res.body).toEqual({ error: 'temporarily_unavailable', error_description: 'try again later' })
  })
})

describe('RFC 8252 §7.3: loopback redirect URIs', () => {
  it('any port on a registered http://127.0.0.1 URI is accepted and bound to the pending request', async () => {
    const res = await authorize({ client_id: 'native', redirect_uri: 'http://127.0.0.1:61000/callback' })
    expect(res.status).toBe(302)
    const state = res.location!.searchParams.get('state')!
    const pending = await store.get<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, pendingId(state))
    expect(pending!.redirectUri).toBe('http://127.0.0.1:61000/callback')
  })

  it('another path on the loopback host is rejected with a 400', async () => {
    expectRendered(
      await authorize({ client_id: 'native', redirect_uri: 'http://127.0.0.1:61000/other' }),
      'invalid_request',
      'redirect_uri is not registered for this client',
    )
  })
})

describe('after validation, errors go back to a trusted client with state and iss (RFC 9207 §2)', () => {
  it('OAuth 2.1 §4.1.1: response_type other than code → unsupported_response_type', async () => {
    expectClientError(await authorize({ response_type: 'token' }), 'unsupported_response_type', 'response_type must be code')
  })

  it('missing response_type → invalid_request', async () => {
    expectClientError(await authorize({ response_type: undefined }), 'invalid_request', 'response_type is required')
  })

  it('RFC 6749 §4.1.2.1: a client not registered for the code grant → unauthorized_client', async () => {
    expectClientError(
      await authorize({ client_id: 'no-code' }),
      'unauthorized_client',
      'client is not registered for the authorization code grant',
    )
  })

  it('RFC 7636 §4.3 / OAuth 2.1 §4.1.1: code_challenge_method=plain → invalid_request', async () => {
    expectClientError(await authorize({ code_challenge_method: 'plain' }), 'invalid_request', 'code_challenge_method must be S256')
  })

  it('RFC 7636 §4.3: missing code_challenge_method (means plain) → invalid_request', async () => {
    expectClientError(await authorize({ code_challenge_method: undefined }), 'invalid_request', 'code_challenge_method must be S256')
  })

  it('OAuth 2.1 §4.1.1: missing code_challenge → invalid_request', async () => {
    expectClientError(await authorize({ code_challenge: undefined }), 'invalid_request', 'code_challenge is required (PKCE)')
  })

  it('RFC 7636 §4.2: a challenge that is not 43 base64url characters → invalid_request', async () => {
    expectClientError(
      await authorize({ code_challenge: 'too-short' }),
      'invalid_request',
      'code_challenge must be 43 base64url characters (S256)',
    )
    expectClientError(
      await authorize({ code_challenge: `${challenge.slice(0, 42)}=` }),
      'invalid_request',
      'code_challenge must be 43 base64url characters (S256)',
    )
  })

  it('RFC 6749 §3.3: an unsupported scope → invalid_scope', async () => {
    expectClientError(await authorize({ scope: 'openid admin' }), 'invalid_scope', 'unsupported scope: admin')
  })

  it('RFC 7591 §2: a scope outside the client\'s registered scope → invalid_scope', async () => {
    expectClientError(
      await authorize({ client_id: 'narrow', scope: 'openid email' }),
      'invalid_scope',
      'scope not registered for this client: email',
    )
  })

  it('RFC 8707 §2: a resource that is not an allowed audience → invalid_target', async () => {
    expectClientError(
      await authorize({ resource: 'https://other.example.com/mcp' }),
      'invalid_target',
      'resource is not a registered audience',
    )
  })

  it('RFC 8707 §2: several resource parameters → invalid_target', async () => {
    expectClientError(
      await authorize({ resource: [RESOURCE, RESOURCE] }),
      'invalid_target',
      'multiple resource parameters are not supported',
    )
  })

  it('RFC 8707 §2: no resource with several allowed audiences → invalid_target', async () => {
    const app = appFor({ allowedAudiences: [RESOURCE, 'https://vmcp.example.com/other'] })
    expectClientError(await authorize({}, app), 'invalid_target', 'resource is required')
  })

  it('RFC 6749 §3.1: a repeated parameter → invalid_request', async () => {
    expectClientError(await authorize({ scope: ['openid', 'profile'] }), 'invalid_request', 'scope must not be repeated')
  })

  it('without a client state the error carries no state', async () => {
    const res = await authorize({ state: undefined, response_type: 'token' })
    expect(Object.fromEntries(res.location!.searchParams)).toEqual({
      error: 'unsupported_response_type',
      error_description: 'response_type must be code',
      iss: ISSUER,
    })
  })

  it('the first upstream cannot be reached → server_error, nothing stored', async () => {
    upstreamDown = true
    expectClientError(await authorize(), 'server_error', 'sign-in at upstream corp is not available')
  })

  it('a registered redirect URI with a query keeps it (RFC 6749 §3.1.2)', async () => {
    const withQuery = 'https://app.example.com/cb?tenant=a%20b'
    clients.set('query', client('query', [withQuery]))
    const res = await authorize({ client_id: 'query', redirect_uri: withQuery, response_type: 'token' })
    expect(res.rawLocation).toBe(
      `${withQuery}&error=unsupported_response_type&error_description=response_type+must+be+code` +
        `&state=xyz&iss=${encodeURIComponent(ISSUER)}`,
    )
  })
})

describe('a valid request', () => {
  it('mints a tsid, stores the pending authorization under SHA-256 of the state, and 302s upstream', async () => {
    const res = await authorize({ resource: undefined })
    expect(res.status).toBe(302)
    expect(res.cacheControl).toBe('no-store')
    expect(res.location!.origin + res.location!.pathname).toBe(UPSTREAM_AUTH)
    const state = res.location!.searchParams.get('state')!
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // Never keyed by the state itself.
    expect(await store.get(PENDING_AUTHORIZATION_KIND, state)).toBeUndefined()
    const pending = await store.take<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, pendingId(state))
    expect(pending).toMatchObject({
      clientId: 'app',
      redirectUri: REDIRECT,
      state: 'xyz',
      codeChallenge: challenge,
      scope: 'openid profile',
      // RFC 8707: the single allowed audience is the default.
      resource: RESOURCE,
      upstreamIndex: 0,
    })
    expect(pending!.tsid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(Object.keys(pending!.legs)).toEqual(['corp'])
    expect(pending!.legs.corp!.codeVerifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/)
    expect(pending!.legs.corp!.nonce.length).toBeGreaterThanOrEqual(43)
  })

  it('every authorization gets its own tsid and state', async () => {
    const a = await authorize()
    const b = await authorize()
    const sa = a.location!.searchParams.get('state')!
    const sb = b.location!.searchParams.get('state')!
    expect(sa).not.toBe(sb)
    const pa = await store.get<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, pendingId(sa))
    const pb = await store.get<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, pendingId(sb))
    expect(pa!.tsid).not.toBe(pb!.tsid)
  })
})
