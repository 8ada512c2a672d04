import { createHash, timingSafeEqual } from 'node:crypto'
import { Hono, type Context } from 'hono'
import { cors } from 'hono/cors'
import type { AuthServerConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import { readStreamLimited } from '../net/index.js'
import type { Store } from '../storage/index.js'
import { verifyClientSecret } from './clients.js'
import type { ClientRegistry, OAuthClient } from './contracts.js'
import type { GrantStore, RefreshFamily } from './grants.js'
import { issueAccessToken } from './jwt.js'
import type { SigningKeys } from './keys.js'
import { authServerPaths } from './metadata.js'
import { answerOAuth, OAuthError, oauthError } from './oauth-error.js'
import { createRateLimiter, type ClientIpResolver } from './rate-limit.js'

export interface TokenEndpointOptions {
  config: Pick<AuthServerConfig, 'issuer' | 'tokenLifespans' | 'rateLimits'>
  keys: SigningKeys
  clients: ClientRegistry
  grants: GrantStore
  /** For the rate-limit counters. */
  store: Store
  logger: Logger
  /** Default: the socket address under @hono/node-server. */
  clientIp?: ClientIpResolver
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number
}

export const MAX_TOKEN_REQUEST_BYTES = 64 * 1024

type AuthMethod = OAuthClient['tokenEndpointAuthMethod']
type Params = Map<string, string>

// RFC 7636 §4.1: code_verifier = 43*128 unreserved characters.
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/
const BASIC_CHALLENGE = 'Basic realm="vmcp"'
const SUCCESS_HEADERS = {
  'content-type': 'application/json',
  // RFC 6749 §5.1: token responses must not be cached.
  'cache-control': 'no-store',
  pragma: 'no-cache',
}

const invalidRequest = (description: string) => new OAuthError('invalid_request', description)
const invalidGrant = (description: string) => new OAuthError('invalid_grant', description)

async function readBody(req: Request, maxBytes: number): Promise<string | undefined> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return undefined
  const buf = await readStreamLimited(req.body, maxBytes)
  return buf?.toString('utf8')
}

function parseForm(text: string): Params {
  const params: Params = new Map()
  for (const [key, value] of new URLSearchParams(text)) {
    // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    if (value === '') continue
    if (params.has(key)) {
      // RFC 8707 §2: several resources are legal, but one grant has one audience here.
      if (key === 'resource') {
        throw new OAuthError('invalid_target', 'multiple resource parameters are not supported')
      }
      // RFC 6749 §3.2: parameters must not be included more than once.
      throw invalidRequest(
        /^[a-z_]{1,32}$/.test(key) ? `parameter ${key} is repeated` : 'a parameter is repeated',
      )
    }
    params.set(key, value)
  }
  return params
}

// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64.
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}

/** BASE64URL(SHA256(verifier)) === challenge, in constant time (RFC 7636 §4.6). */
export function pkceMatches(verifier: string, challenge: string): boolean {
  const computed = Buffer.from(createHash('sha256').update(verifier, 'ascii').digest('base64url'))
  const expected = Buffer.from(challenge)
  return computed.length === expected.length && timingSafeEqual(computed, expected)
}

function isScopeSubset(requested: string, granted: string): boolean {
  const allowed = new Set(granted.split(' ').filter(Boolean))
  return requested
    .split(' ')
    .filter(Boolean)
    .every((s) => allowed.has(s))
}

const normalizeScope = (scope: string) => [...new Set(scope.split(' ').filter(Boolean))].join(' ')

/**
 * `POST ${issuer path}/oauth/token` (mount at '/'): RFC 6749 §3.2 token endpoint for the
 * `authorization_code` (PKCE S256 required) and `refresh_token` (rotating, reuse-detecting)
 * grants. Form bodies only, at most 64 KiB, rate limited per client IP. Errors are RFC 6749 §5.2
 * JSON with `Cache-Control: no-store`; storage outages answer 503; nothing is thrown to the client.
 */
export function createTokenEndpoint(options: TokenEndpointOptions): Hono {
  const { config, keys, clients, grants, logger } = options
  const now = options.now ?? Date.now
  const path = authServerPaths(config.issuer).token
  const app = new Hono()

  async function authenticateClient(c: Context, params: Params): Promise<OAuthClient> {
    const header = c.req.header('authorization')
    let method: AuthMethod = 'none'
    let clientId = params.get('client_id')
    let secret: string | undefined
    const fail = (description: string, basic: boolean) =>
      new OAuthError(
        'invalid_client',
        description,
        basic ? { headers: { 'www-authenticate': BASIC_CHALLENGE } } : {},
      )

    if (header !== undefined) {
      const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header)
      if (!m?.[1]) throw fail('unsupported Authorization header; use Basic', true)
      const decoded = Buffer.from(m[1], 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 0) throw fail('malformed Basic credentials', true)
      let basicId: string
      try {
        basicId = formDecode(decoded.slice(0, colon))
        secret = formDecode(decoded.slice(colon + 1))
      } catch {
        throw fail('malformed Basic credentials', true)
      }
      // RFC 6749 §2.3: a client uses one authentication method per request.
      if (params.has('client_secret')) {
        throw invalidRequest('use either HTTP Basic or client_secret, not both')
      }
      if (clientId !== undefined && clientId !== basicId) {
        throw fail('client_id does not match the Basic credentials', true)
      }
      clientId = basicId
      method = 'client_secret_basic'
    } else if (params.has('client_secret')) {
      secret = params.get('client_secret')
      method = 'client_secret_post'
    }
    const basic = method === 'client_secret_basic'
    if (!clientId) throw fail('client authentication required', basic)
    const client = await clients.getClient(clientId)
    if (!client) throw fail('unknown client', basic)
    // RFC 6749 §2.3: the method must be the one the client registered (RFC 7591 §2).
    if (client.tokenEndpointAuthMethod !== method) {
      throw fail(`client must authenticate with ${client.tokenEndpointAuthMethod}`, basic)
    }
    // RFC 6749 §2.3.1: secrets compared in constant time against the stored hash.
    if (method !== 'none' && (secret === undefined || !verifyClientSecret(client, secret))) {
      throw fail('client authentication failed', basic)
    }
    return client
  }

  async function respond(
    c: Context,
    client: OAuthClient,
    grantType: string,
    family: RefreshFamily,
    scope: string,
    refreshToken: string | undefined,
  ): Promise<Response> {
    const at = await issueAccessToken({
      keys,
      issuer: config.issuer,
      subject: family.subject,
      // RFC 8707 §2: the resource the grant was made for is the token's audience.
      audience: family.resource,
      clientId: client.clientId,
      scope,
      tsid: family.tsid,
      ...(family.name !== undefined ? { name: family.name } : {}),
      ...(family.email !== undefined ? { email: family.email } : {}),
      ttlMs: config.tokenLifespans.accessToken,
      now,
    })
    const body: Record<string, unknown> = {
      access_token: at.token,
      token_type: 'Bearer',
      expires_in: at.expiresIn,
    }
    if (refreshToken) body.refresh_token = refreshToken
    if (scope) body.scope = scope
    logger.debug(
      {
        grant_type: grantType,
        client_id: client.clientId,
        grant: family.grantId,
        jti: at.jti,
        tsid: fingerprint(family.tsid),
      },
      'token issued',
    )
    return c.body(JSON.stringify(body), 200, SUCCESS_HEADERS)
  }

  async function authorizationCode(
    c: Context,
    client: OAuthClient,
    params: Params,
  ): Promise<Response> {
    const code = params.get('code')
    const redirectUri = params.get('redirect_uri')
    const verifier = params.get('code_verifier')
    if (!code) throw invalidRequest('code is required')
    // RFC 6749 §4.1.3: the redirect_uri of the authorization request comes again.
    if (!redirectUri) throw invalidRequest('redirect_uri is required')
    // RFC 7636 §4.5 / OAuth 2.1 §4.1.3: PKCE is mandatory, so is the verifier.
    if (!verifier) throw invalidRequest('code_verifier is required')
    if (!CODE_VERIFIER.test(verifier)) {
      throw invalidRequest('code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~')
    }
    const resource = params.get('resource')

    // Every check runs before the code is consumed, so a mistaken or malicious attempt does not
    // burn it (and one after its redemption is not taken for a replay).
    const redemption = await grants.redeemCode(code, (grant) => {
      // RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
      if (grant.clientId !== client.clientId) {
        return invalidGrant('authorization code was issued to another client')
      }
      // RFC 6749 §4.1.3 / OAuth 2.1 §4.1.3: redirect_uri identical (simple string comparison)
      // to the authorization request's.
      if (grant.redirectUri !== redirectUri) {
        return invalidGrant('redirect_uri does not match the authorization request')
      }
      // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal the stored S256 challenge.
      if (!pkceMatches(verifier, grant.codeChallenge)) {
        return invalidGrant('code_verifier does not match the code_challenge')
      }
      // RFC 8707 §2.2: a resource at the token endpoint must be one the grant covers.
      if (resource !== undefined && resource !== grant.resource) {
        return new OAuthError('invalid_target', 'resource does not match the authorization request')
      }
      return undefined
    })
    if (redemption.status === 'rejected') throw redemption.error
    if (redemption.status === 'replayed') {
      // RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: the replay has revoked what the code issued.
      throw invalidGrant('authorization code was already used; tokens issued with it are revoked')
    }
    if (redemption.status === 'invalid') {
      throw invalidGrant('authorization code is invalid or expired')
    }
    const { grant, grantId } = redemption

    const family: RefreshFamily = {
      grantId,
      clientId: client.clientId,
      scope: grant.scope,
      resource: grant.resource,
      subject: grant.subject,
      tsid: grant.tsid,
      ...(grant.name !== undefined ? { name: grant.name } : {}),
      ...(grant.email !== undefined ? { email: grant.email } : {}),
    }
    let refreshToken: string | undefined
    if (client.grantTypes.includes('refresh_token')) {
      refreshToken = await grants.issueRefreshToken(family)
      // A replay of this very code revoked the grant while we were issuing.
      if (!refreshToken) {
        throw invalidGrant('authorization code was already used; tokens issued with it are revoked')
      }
    }
    return respond(c, client, 'authorization_code', family, grant.scope, refreshToken)
  }

  async function refreshTokenGrant(
    c: Context,
    client: OAuthClient,
    params: Params,
  ): Promise<Response> {
    const presented = params.get('refresh_token')
    if (!presented) throw invalidRequest('refresh_token is required')
    const requestedScope = params.get('scope')
    const resource = params.get('resource')

    const result = await grants.rotateRefreshToken(presented, (family) => {
      // RFC 6749 §6: the refresh token must have been issued to the authenticated client.
      if (family.clientId !== client.clientId) {
        return invalidGrant('refresh token was issued to another client')
      }
      // RFC 8707 §2.2: the audience cannot change on refresh.
      if (resource !== undefined && resource !== family.resource) {
        return new OAuthError('invalid_target', 'resource does not match the original grant')
      }
      // RFC 6749 §6: the requested scope must not include any scope not originally granted.
      if (requestedScope !== undefined && !isScopeSubset(requestedScope, family.scope)) {
        return new OAuthError('invalid_scope', 'requested scope exceeds the original grant')
      }
      return undefined
    })
    if (result.status === 'rejected') throw result.error
    if (result.status === 'reused') {
      throw invalidGrant('refresh token was already used; the grant is revoked')
    }
    if (result.status === 'invalid') {
      throw invalidGrant('refresh token is invalid, expired or revoked')
    }
    const scope =
      requestedScope !== undefined ? normalizeScope(requestedScope) : result.family.scope
    return respond(c, client, 'refresh_token', result.family, scope, result.refreshToken)
  }

  async function handle(c: Context): Promise<Response> {
    const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
    // RFC 6749 §3.2: token requests are application/x-www-form-urlencoded.
    if (type !== 'application/x-www-form-urlencoded') {
      throw invalidRequest('content type must be application/x-www-form-urlencoded')
    }
    const text = await readBody(c.req.raw, MAX_TOKEN_REQUEST_BYTES)
    if (text === undefined) {
      throw new OAuthError(
        'invalid_request',
        `request body exceeds ${MAX_TOKEN_REQUEST_BYTES} bytes`,
        { status: 413 },
      )
    }
    const params = parseForm(text)
    const grantType = params.get('grant_type')
    if (!grantType) throw invalidRequest('grant_type is required')
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token') {
      throw new OAuthError(
        'unsupported_grant_type',
        'supported grant types: authorization_code, refresh_token',
      )
    }
    const client = await authenticateClient(c, params)
    // RFC 6749 §5.2: the client is not registered for this grant type.
    if (!client.grantTypes.includes(grantType)) {
      throw new OAuthError('unauthorized_client', `client is not registered for ${grantType}`)
    }
    return grantType === 'authorization_code'
      ? authorizationCode(c, client, params)
      : refreshTokenGrant(c, client, params)
  }

  app.use(
    path,
    cors({
      origin: '*',
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['Authorization', 'Content-Type', 'MCP-Protocol-Version'],
      maxAge: 86400,
    }),
  )
  app.post(
    path,
    createRateLimiter({
      store: options.store,
      name: 'token',
      limit: config.rateLimits.token,
      logger,
      now,
      ...(options.clientIp ? { clientIp: options.clientIp } : {}),
    }),
    (c) => answerOAuth('token', logger, () => handle(c)),
  )
  app.all(path, () => oauthError(405, 'invalid_request', 'use POST', { allow: 'POST, OPTIONS' }))
  return app
}
