import type { OutgoingStrategyConfig } from '../../config/index.js'
import type { Logger } from '../../log/index.js'
import type { FetchLike } from '../../net/index.js'
import { createHeaderInjectionStrategy } from './header-injection.js'
import { createTokenExchangeStrategy } from './token-exchange.js'
import type { OutgoingAuthStrategy } from './types.js'
import { createUnauthenticatedStrategy } from './unauthenticated.js'
import { createUpstreamInjectStrategy } from './upstream-inject.js'

/**
 * Builds the strategy for one backend from its validated config. Call once per backend and keep
 * the result: strategies hold per-backend state (the token exchange cache).
 *
 * Does not validate the config (the schema and cross-field checks already did), and does not
 * contact anything until `headers()` is called.
 */
export function createOutgoingAuth(
  config: OutgoingStrategyConfig,
  options: OutgoingAuthOptions,
): OutgoingAuthStrategy {
  switch (config.type) {
    case 'unauthenticated':
      return createUnauthenticatedStrategy()
    case 'header_injection':
      return createHeaderInjectionStrategy(config.headerInjection)
    case 'token_exchange':
      return createTokenExchangeStrategy(config.tokenExchange, options)
    case 'upstream_inject':
      return createUpstreamInjectStrategy(config.upstreamInject, options)
    default: {
      const unknown: never = config
      throw new Error(`unknown outgoing auth strategy ${(unknown as { type: string }).type}`)
    }
  }
}

/** What `createOutgoingAuth` needs besides the strategy config. */
export interface OutgoingAuthOptions {
  /** Backend name: error messages and log lines carry it. */
  backend: string
  logger: Logger
  /** Outbound fetch for token endpoints; default `createOutboundFetch()` from `net/`. */
  fetch?: FetchLike
  /** Clock in epoch ms for token cache expiry; default `Date.now`. Tests inject one. */
  now?: () => number
}

/**
 * Sends one operator-configured header on every request; `identityScoped` is false. The value is
 * a `Secret` and is revealed only into the returned header map.
 */
export { createHeaderInjectionStrategy, type HeaderInjectionConfig } from './header-injection.js'
/**
 * RFC 8693 token exchange of the caller's verified token for a backend token, with a per-backend
 * cache and single-flight. Throws `OutgoingAuthError` for anonymous callers and endpoint errors.
 * Prefer `createOutgoingAuth`; use directly for `maxCacheEntries` or `timeoutMs`.
 */
export {
  createTokenExchangeStrategy,
  type TokenExchangeConfig,
  type TokenExchangeOptions,
} from './token-exchange.js'
/** Sends no credentials. */
export { createUnauthenticatedStrategy } from './unauthenticated.js'
/**
 * Mode B: sends the caller's upstream provider token; throws `OutgoingAuthError` (sign in again)
 * when the identity has none for the configured provider.
 */
export {
  createUpstreamInjectStrategy,
  type UpstreamInjectConfig,
  type UpstreamInjectOptions,
} from './upstream-inject.js'
/**
 * The strategy contract and its error. Callers must fail the backend call on `OutgoingAuthError`
 * and may show its message (it names the backend, never a token).
 */
export { OutgoingAuthError, type OutgoingAuthStrategy } from './types.js'
