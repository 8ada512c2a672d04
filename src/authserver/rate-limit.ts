import type { Context, MiddlewareHandler } from 'hono'
import type { Logger } from '../log/index.js'
import {
  createClientAddressResolver,
  parseAddress,
  type ClientAddressOptions,
} from '../net/index.js'
import type { Store } from '../storage/index.js'
import { oauthError } from './oauth-error.js'

/** Who is calling, for rate limiting. */
export type ClientIpResolver = (c: Context) => string

/**
 * The TCP peer address under @hono/node-server (`c.env.incoming.socket.remoteAddress`), else
 * 'unknown'. Forwarded headers are not trusted here: behind a proxy, pass a resolver that knows
 * which hops to trust.
 */
export const socketClientIp: ClientIpResolver = (c) => {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined
  return env?.incoming?.socket?.remoteAddress ?? 'unknown'
}

export interface RateLimiterOptions {
  store: Store
  /** Counter namespace, e.g. 'register' or 'token'. */
  name: string
  /** Requests allowed per window per client. */
  limit: number
  /** Window length (default one minute: the config's limits are per minute). */
  windowMs?: number
  clientIp?: ClientIpResolver
  logger: Logger
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number
}

const RATE_KIND = 'ratelimit'

/**
 * The client address behind `server.trustedProxies`: the TCP peer, or the first untrusted hop of
 * the configured forwarding header walked from the peer backwards (createClientAddressResolver).
 * With no trusted proxies this is exactly socketClientIp.
 */
export function createClientIpResolver(options: ClientAddressOptions): ClientIpResolver {
  const resolve = createClientAddressResolver(options)
  const header = options.header ?? 'x-forwarded-for'
  return (c) => resolve(socketClientIp(c), c.req.header(header))
}

/**
 * The counter key of a client address: IPv4 as is (IPv4-mapped IPv6 unwrapped), IPv6 by its /64,
 * because one host usually owns a whole /64 and could otherwise rotate through it.
 */
export function rateLimitKey(address: string): string {
  const parsed = parseAddress(address)
  if (!parsed) return address || 'unknown'
  if (parsed.kind() === 'ipv4') return parsed.toString()
  const parts = (parsed as { parts: number[] }).parts.slice(0, 4)
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`
}

/**
 * Sliding-window limiter on `Store.increment`, keyed by (name, client address, window). A fixed
 * window lets a client spend its limit at the end of one window and again at the start of the
 * next (2× the limit in a moment); here the previous window's count still weighs in, in the share
 * of it that the sliding window covers (`current + previous × (1 − elapsed / window)`), so no span
 * of one window length lets much more than the limit through.
 * Over the limit: 429 with `Retry-After` (seconds until one more request fits; RFC 6585 §4, RFC 9110
 * §10.2.3) and `{"error":"too_many_requests"}`. That code is not in RFC 6749 §5.2, which has none
 * for rate limiting: `slow_down` means "poll less often" in the device flow (RFC 8628 §3.5) and
 * `temporarily_unavailable` is defined only for the authorization endpoint, so a plain extension
 * code (RFC 6749 §8.5) that says what happened is the least misleading; clients act on the 429.
 * Counters live two windows, so the previous one can still be read. A store failure answers 503
 * (fail closed: the endpoint behind would need the store anyway).
 */
export function createRateLimiter(options: RateLimiterOptions): MiddlewareHandler {
  const { store, name, limit, logger } = options
  const windowMs = options.windowMs ?? 60_000
  const now = options.now ?? Date.now
  const clientIp = options.clientIp ?? socketClientIp

  return async (c, next) => {
    const t = now()
    const window = Math.floor(t / windowMs)
    const who = rateLimitKey(clientIp(c))
    let estimate: number
    let current: number
    let previous: number
    try {
      const [cur, prev] = await Promise.all([
        store.increment(RATE_KIND, `${name}:${who}:${window}`, 2 * windowMs),
        store.count(RATE_KIND, `${name}:${who}:${window - 1}`),
      ])
      current = cur
      previous = prev
      const elapsed = (t - window * windowMs) / windowMs
      estimate = current + previous * (1 - elapsed)
    } catch (err) {
      logger.error({ err: (err as Error).message, limiter: name }, 'rate limiter storage failed')
      return oauthError(503, 'server_error', 'authorization server storage unavailable', {
        'retry-after': '5',
      })
    }
    if (estimate > limit) {
      const wait = untilAllowed(t - window * windowMs, windowMs, current, previous, limit)
      const retryAfter = Math.max(1, Math.ceil(wait / 1000))
      if (estimate - 1 <= limit) {
        logger.info({ limiter: name, client: who, limit }, 'rate limit reached')
      }
      return oauthError(
        429,
        'too_many_requests',
        `too many requests; retry after ${retryAfter} s`,
        {
          'retry-after': String(retryAfter),
        },
      )
    }
    await next()
  }
}

/**
 * Milliseconds from `offset` (into the current window) until one more request fits under the
 * sliding estimate: later in this window, as the previous window's weight fades, when this window
 * alone leaves room; otherwise in the next one, once this window's weight has faded enough.
 */
export function untilAllowed(
  offset: number,
  windowMs: number,
  current: number,
  previous: number,
  limit: number,
): number {
  if (current + 1 <= limit && previous > 0) {
    // previous × (1 − e) + current + 1 ≤ limit
    const e = 1 - (limit - current - 1) / previous
    return Math.max(0, e * windowMs - offset)
  }
  // current × (1 − e) + 1 ≤ limit, in the next window
  const e = current > 0 ? Math.max(0, 1 - (limit - 1) / current) : 0
  return windowMs - offset + e * windowMs
}
