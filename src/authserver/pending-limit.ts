import type { Context } from 'hono'
import type { Logger } from '../log/index.js'
import type { Store } from '../storage/index.js'
import { oauthError } from './oauth-error.js'
import { rateLimitKey, socketClientIp, type ClientIpResolver } from './rate-limit.js'

export interface PendingLimitOptions {
  /** A store whose counters are plain (`increment` + `get`): the unsealed AS store. */
  store: Store
  /** How long a pending authorization lives (authCode lifespan). */
  ttlMs: number
  maxPerAddress: number
  maxTotal: number
  clientIp?: ClientIpResolver
  logger: Logger
  now?: () => number
}

/** Answers a request that would start one sign-in too many; undefined admits it. */
export type PendingAdmission = (c: Context) => Promise<Response | undefined>

const KIND = 'ratelimit'

/**
 * Caps the pending authorizations (each holds upstream PKCE verifiers for `ttlMs`) per client
 * address and in total. A pending record lives at most `ttlMs` per leg, so every live first leg
 * was started in the current or the previous window of length `ttlMs`: admitting only while
 * (current + previous) ≤ max bounds the live count without reading the store's keys. Attempts
 * over the cap count too, so an address that keeps trying stays refused until it stops.
 */
export function createPendingLimit(options: PendingLimitOptions): PendingAdmission {
  const { store, ttlMs, logger } = options
  const now = options.now ?? Date.now
  const clientIp = options.clientIp ?? socketClientIp
  const log = logger.child({ component: 'authserver.pending-limit' })

  // Counters live two windows, so the next window can still read this one as its previous.
  const started = async (scope: string, window: number) => {
    const current = await store.increment(KIND, `pending:${scope}:${window}`, 2 * ttlMs)
    const previous = await store.get<number>(KIND, `pending:${scope}:${window - 1}`)
    return current + (typeof previous === 'number' ? previous : 0)
  }

  return async (c) => {
    const t = now()
    const window = Math.floor(t / ttlMs)
    const retryAfter = String(Math.max(1, Math.ceil(((window + 1) * ttlMs - t) / 1000)))
    const who = rateLimitKey(clientIp(c))
    try {
      if ((await started(`addr:${who}`, window)) > options.maxPerAddress) {
        log.info({ client: who, max: options.maxPerAddress }, 'pending authorizations per address capped')
        return oauthError(
          429,
          'too_many_requests',
          'too many sign-ins in progress from this address; finish one or retry later',
          { 'retry-after': retryAfter },
        )
      }
      if ((await started('total', window)) > options.maxTotal) {
        log.warn({ max: options.maxTotal }, 'pending authorizations in total capped')
        return oauthError(
          503,
          'temporarily_unavailable',
          'too many sign-ins in progress; retry later',
          { 'retry-after': retryAfter },
        )
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'pending-authorization counter storage failed')
      return oauthError(503, 'temporarily_unavailable', 'try again later', { 'retry-after': '5' })
    }
    return undefined
  }
}
