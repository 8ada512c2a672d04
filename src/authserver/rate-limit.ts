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
 * Fixed-window limiter on `Store.increment`, keyed by (name, client address, window). Over the
 * limit: 429 with `Retry-After` (seconds to the window's end; RFC 6585 §4, RFC 9110 §10.2.3)
 * and `{"error":"too_many_requests"}`. That code is not in RFC 6749 §5.2, which has none for rate
 * limiting: `slow_down` means "poll less often" in the device flow (RFC 8628 §3.5) and
 * `temporarily_unavailable` is defined only for the authorization endpoint, so a plain extension
 * code (RFC 6749 §8.5) that says what happened is the least misleading; clients act on the 429.
 * The window number is part of the key, so Retry-After is exact whatever the store's window is.
 * A store failure answers 503 (fail closed: the endpoint behind would need the store anyway).
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
    let count: number
    try {
      count = await store.increment(RATE_KIND, `${name}:${who}:${window}`, windowMs)
    } catch (err) {
      logger.error({ err: (err as Error).message, limiter: name }, 'rate limiter storage failed')
      return oauthError(503, 'server_error', 'authorization server storage unavailable', {
        'retry-after': '5',
      })
    }
    if (count > limit) {
      const retryAfter = Math.max(1, Math.ceil(((window + 1) * windowMs - t) / 1000))
      if (count === limit + 1) {
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
