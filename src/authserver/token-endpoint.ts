import { createHash, timingSafeEqual } from 'node:crypto'
import { Hono, type Context } from 'hono'
import type { AuthServerConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import type { Store } from '../storage/index.js'
import { createClientPostEndpoint, invalidRequest, type FormParams } from './client-auth.js'
import type { ClientRegistry, CodeGrant, OAuthClient } from './contracts.js'
import type { GrantStore, RefreshFamily } from './grants.js'
import { issueAccessToken, issueIdToken } from './jwt.js'
import type { SigningKeys } from './keys.js'
import { authServerPaths } from './metadata.js'
import { OAuthError } from './oauth-error.js'
import type { ClientIpResolver } from './rate-limit.js'

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
  metrics?: TokenMetrics
}

/** What the token endpoint reports: responses by grant type, refusals by error code. */
export interface TokenMetrics {
  tokenIssued(grantType: string): void
  tokenRefused(error: string): void
}

type Params = FormParams

// RFC 7636 §4.1: code_verifier = 43*128 unreserved characters.
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/
const SUCCESS_HEADERS = {
  'content-type': 'application/json',
  // RFC 6749 §5.1: token responses must not be cached.
  'cache-control': 'no-store',
  pragma: 'no-cache',
}

const invalidGrant = (description: string) => new OAuthError('invalid_grant', description)

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

  async function respond(
    c: Context,
    client: OAuthClient,
    grantType: string,
    family: RefreshFamily,
    scope: string,
    refreshToken: string | undefined,
    /** The code's grant: an ID token goes with the code exchange when `openid` was granted. */
    codeGrant?: CodeGrant,
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
    const scopes = new Set(scope.split(' '))
    // OIDC Core §3.1.3.3: `openid` granted → an ID token with the code exchange.
    if (codeGrant && scopes.has('openid')) {
      body.id_token = await issueIdToken({
        keys,
        issuer: config.issuer,
        subject: family.subject,
        clientId: client.clientId,
        ...(codeGrant.nonce !== undefined ? { nonce: codeGrant.nonce } : {}),
        authTime: codeGrant.issuedAt,
        accessToken: at.token,
        // OIDC Core §5.4: scope claims only for the scopes granted.
        ...(scopes.has('profile') && family.name !== undefined ? { name: family.name } : {}),
        ...(scopes.has('email') && family.email !== undefined ? { email: family.email } : {}),
        ttlMs: config.tokenLifespans.accessToken,
        now,
      })
    }
    logger.debug(
      {
        grant_type: grantType,
        client_id: client.clientId,
        grant: family.grantId,
        jti: at.jti,
        tsid: fingerprint(family.tsid),
        id_token: body.id_token !== undefined,
      },
      'token issued',
    )
    options.metrics?.tokenIssued(grantType)
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
      // tokenLifespans.refreshMax: the family's whole life, rotation or not.
      endsAt: now() + config.tokenLifespans.refreshMax,
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
    return respond(c, client, 'authorization_code', family, grant.scope, refreshToken, grant)
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

  const endpoint = createClientPostEndpoint({
    path,
    name: 'token',
    limit: config.rateLimits.token,
    store: options.store,
    logger,
    clients,
    now,
    ...(options.clientIp ? { clientIp: options.clientIp } : {}),
    precheck(params) {
      const grantType = params.get('grant_type')
      if (!grantType) throw invalidRequest('grant_type is required')
      if (grantType !== 'authorization_code' && grantType !== 'refresh_token') {
        throw new OAuthError(
          'unsupported_grant_type',
          'supported grant types: authorization_code, refresh_token',
        )
      }
    },
    handle(c, client, params) {
      const grantType = params.get('grant_type') as 'authorization_code' | 'refresh_token'
      // RFC 6749 §5.2: the client is not registered for this grant type.
      if (!client.grantTypes.includes(grantType)) {
        throw new OAuthError('unauthorized_client', `client is not registered for ${grantType}`)
      }
      return grantType === 'authorization_code'
        ? authorizationCode(c, client, params)
        : refreshTokenGrant(c, client, params)
    },
  })
  const metrics = options.metrics
  if (!metrics) return endpoint
  // Refusals are counted by their RFC 6749 §5.2 code, read from the answer (error path only).
  const app = new Hono()
  app.use(path, async (c, next) => {
    await next()
    if (c.req.method !== 'POST' || c.res.status < 400) return
    const body = (await c.res.clone().json().catch(() => ({}))) as { error?: unknown }
    metrics.tokenRefused(typeof body.error === 'string' ? body.error : 'unknown')
  })
  app.route('/', endpoint)
  return app
}
