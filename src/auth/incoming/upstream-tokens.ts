import { UpstreamRefreshError, type UpstreamTokenSource } from '../../authserver/index.js'
import { fingerprint, type Logger, type Secret } from '../../log/index.js'
import { buildBearerErrorResponse } from './challenge.js'
import type { Identity } from './identity.js'
import type { AuthRequest, IncomingAuthenticator } from './types.js'

export interface UpstreamTokenAuthOptions {
  source: UpstreamTokenSource
  resourceMetadataUrl: string
  scopes: readonly string[]
  logger: Logger
  /**
   * Providers that upstream_inject backends need: a request without one of them is 401. A
   * function is asked on every request (the backends can change on a configuration reload).
   */
  requiredProviders?: readonly string[] | (() => readonly string[])
}

const unavailable = () =>
  new Response(
    JSON.stringify({ error: 'temporarily_unavailable', error_description: 'authentication service temporarily unavailable' }),
    {
      status: 503,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '5' },
    },
  )

/**
 * How long a session's decrypted upstream tokens are reused without asking storage. The store
 * hands out tokens with at least its refresh skew (30 s) of life left, so a copy this young is
 * still valid; this process drops copies at once on refresh and revoke, and another replica's
 * revoke reaches this one within this bound.
 */
const TOKEN_CACHE_MS = 10_000
const TOKEN_CACHE_MAX = 10_000

/**
 * Mode B: after the token is verified against vmcp's own issuer, loads the upstream tokens of its
 * `tsid` into `identity.upstreamTokens` (refreshing expired ones). A failed refresh is 401
 * `invalid_token` naming the upstream, so the client signs in again; storage down is 503.
 */
export function withUpstreamTokens(
  inner: IncomingAuthenticator,
  options: UpstreamTokenAuthOptions,
): IncomingAuthenticator {
  const { source, resourceMetadataUrl, scopes, logger } = options
  const { requiredProviders } = options
  const required = typeof requiredProviders === 'function' ? requiredProviders : () => requiredProviders ?? []
  const cache = new Map<string, { tokens: Record<string, Secret>; until: number }>()
  // Bumped on every invalidation: a load that raced one must not cache what it read before it.
  let epoch = 0
  const drop = (tsid: string) => {
    epoch++
    cache.delete(tsid)
  }
  // Keyed by the inner identity (cached per token by the OIDC authenticator): no copy per request.
  const built = new WeakMap<Identity, { identity: Identity; required: readonly string[] }>()
  source.onRevoke(drop)
  source.onTokensChanged?.(drop)
  const load = async (tsid: string, request: AuthRequest) => {
    const hit = cache.get(tsid)
    const now = Date.now()
    if (hit && hit.until > now) return hit.tokens
    const started = epoch
    // The signal is read only here: a fast-path request builds it only when storage is asked.
    const tokens = await source.tokensFor(tsid, request.signal)
    if (Object.keys(tokens).length > 0 && started === epoch) {
      if (cache.size >= TOKEN_CACHE_MAX) cache.delete(cache.keys().next().value as string)
      cache.set(tsid, { tokens, until: now + TOKEN_CACHE_MS })
    }
    return tokens
  }
  const fail = (description: string) => ({
    ok: false as const,
    response: buildBearerErrorResponse({
      resourceMetadataUrl,
      scopes: [...scopes],
      error: 'invalid_token',
      errorDescription: description,
    }),
  })
  return {
    type: inner.type,
    protectedResourceMetadata: () => inner.protectedResourceMetadata(),
    close: () => inner.close?.() ?? Promise.resolve(),
    async authenticate(request) {
      const result = await inner.authenticate(request)
      if (!result.ok) return result
      const tsid = result.identity.claims.tsid
      // Only vmcp's own tokens carry tsid; a token without one has no upstream session.
      if (typeof tsid !== 'string' || tsid === '') return fail('token has no upstream session')
      try {
        const upstreamTokens = await load(tsid, request)
        const needed = required()
        // The same verified identity, the same cached tokens and the same requirements (a reload
        // makes a new list): the identity built and checked last time.
        const known = built.get(result.identity)
        if (known?.identity.upstreamTokens === upstreamTokens && known.required === needed) {
          return { ok: true, identity: known.identity }
        }
        // No token at all: the upstream session ended (grant revoked, or it outlived its
        // lifetime). The client must sign in again, however long its own JWT still lives.
        if (Object.keys(upstreamTokens).length === 0) return fail('upstream session ended; sign in again')
        const missing = needed.find((p) => !(p in upstreamTokens))
        if (missing) return fail(`no upstream token for provider ${missing}; sign in again`)
        const identity = { ...result.identity, upstreamTokens }
        built.set(result.identity, { identity, required: needed })
        return { ok: true, identity }
      } catch (err) {
        if (err instanceof UpstreamRefreshError) {
          logger.info({ upstream: err.upstream, tsid: fingerprint(tsid) }, 'upstream token refresh failed')
          return fail(`upstream ${err.upstream} token is no longer valid; sign in again`)
        }
        logger.warn({ err: (err as Error).message }, 'upstream tokens unavailable')
        return { ok: false, response: unavailable() }
      }
    },
  }
}
