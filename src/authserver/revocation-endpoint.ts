import type { Hono } from 'hono'
import { decodeProtectedHeader, errors, jwtVerify } from 'jose'
import type { AuthServerConfig } from '../config/index.js'
import { fingerprint } from '../log/index.js'
import { createClientPostEndpoint, invalidRequest } from './client-auth.js'
import type { OAuthClient } from './contracts.js'
import { authServerPaths } from './metadata.js'
import { OAuthError } from './oauth-error.js'
import type { TokenEndpointOptions } from './token-endpoint.js'

/** The token endpoint's dependencies (same clients, grants, keys, limiter); less config. */
export type RevocationEndpointOptions = Omit<TokenEndpointOptions, 'config'> & {
  config: Pick<AuthServerConfig, 'issuer' | 'rateLimits'>
}

type Outcome = 'revoked' | 'other-client' | 'unknown' | 'id-token'

/**
 * `POST ${issuer}/oauth/revoke` (mount at '/'): RFC 7009 token revocation, with the client
 * authentication of the token endpoint.
 *
 * - A **refresh token** (current, or already rotated) ends its whole family, then the user's
 *   stored upstream tokens, which are also revoked at every upstream that advertises an RFC 7009
 *   endpoint (best effort).
 * - An **access token** is a JWT and cannot be recalled by itself. Revoking one revokes its
 *   session, named by its `tsid` claim: the refresh family of that session and its upstream
 *   tokens. Mode B loads the upstream tokens of the `tsid` on every request, so from then on every
 *   access token of the session is refused (401, "upstream session ended") on every replica.
 * - vmcp's **ID tokens** are not revocable: `unsupported_token_type` (RFC 7009 §2.2.1).
 *
 * `token_type_hint` (RFC 7009 §2.1) orders the search; an unknown hint is ignored and every type
 * is searched. A token of another client is left alone, and an unknown, expired or already
 * revoked token is not an error: all of these answer 200 (RFC 7009 §2.2).
 */
export function createRevocationEndpoint(options: RevocationEndpointOptions): Hono {
  const { config, keys, grants, logger } = options
  const now = options.now ?? Date.now

  async function revokeAccessToken(token: string, client: OAuthClient): Promise<Outcome> {
    // JWS compact serialization: three parts; refresh tokens have none of these dots.
    if (token.split('.').length !== 3) return 'unknown'
    let payload
    try {
      ;({ payload } = await jwtVerify(token, keys.getKey, {
        issuer: config.issuer,
        currentDate: new Date(now()),
      }))
    } catch (err) {
      // Expired, foreign or forged: nothing of ours to revoke.
      if (err instanceof errors.JOSEError) return 'unknown'
      throw err
    }
    // RFC 9068 §2.1: only `at+jwt` is an access token; what else we sign is an ID token.
    if (decodeProtectedHeader(token).typ !== 'at+jwt') return 'id-token'
    const { tsid, client_id: clientId } = payload
    if (typeof tsid !== 'string' || typeof clientId !== 'string') return 'unknown'
    // RFC 7009 §2.1: the token must have been issued to the client making the request.
    if (clientId !== client.clientId) return 'other-client'
    await grants.revokeSession(tsid, 'access token revoked by its client')
    return 'revoked'
  }

  return createClientPostEndpoint({
    path: authServerPaths(config.issuer).revoke,
    name: 'revoke',
    limit: config.rateLimits.token,
    store: options.store,
    logger,
    clients: options.clients,
    now,
    ...(options.clientIp ? { clientIp: options.clientIp } : {}),
    async handle(c, client, params) {
      const token = params.get('token')
      // RFC 7009 §2.1: token is REQUIRED.
      if (!token) throw invalidRequest('token is required')
      const byRefresh = () => grants.revokeRefreshToken(token, client.clientId)
      const byAccess = () => revokeAccessToken(token, client)
      // RFC 7009 §2.1: the hint orders the search, which then extends to every supported type.
      const order =
        params.get('token_type_hint') === 'access_token'
          ? [byAccess, byRefresh]
          : [byRefresh, byAccess]
      let outcome: Outcome = 'unknown'
      for (const attempt of order) {
        outcome = await attempt()
        if (outcome !== 'unknown') break
      }
      logger.info(
        { client_id: client.clientId, outcome, token_fp: fingerprint(token) },
        'token revocation request',
      )
      if (outcome === 'id-token') {
        // RFC 7009 §2.2.1: the server does not support revoking this type of token.
        throw new OAuthError('unsupported_token_type', 'ID tokens cannot be revoked')
      }
      // RFC 7009 §2.2: 200 whether or not there was anything to revoke (and for another
      // client's token, which is left alone: RFC 7009 §2.1), so the answer tells nothing.
      return c.body(null, 200, { 'cache-control': 'no-store' })
    },
  })
}
