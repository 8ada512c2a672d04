import type { Identity } from '../incoming/identity.js'

/**
 * How vmcp authenticates to one backend. `headers()` is called for every outbound HTTP request,
 * so strategies may cache and refresh. They never see or forward the client's own token
 * except as an RFC 8693 subject token.
 */
export interface OutgoingAuthStrategy {
  readonly type: 'unauthenticated' | 'header_injection' | 'token_exchange' | 'upstream_inject'
  /** True when the headers depend on the caller, so backend connections must be per identity. */
  readonly identityScoped: boolean
  headers(identity: Identity | undefined, signal?: AbortSignal): Promise<Record<string, string>>
  /**
   * The headers `headers()` would give for `identity` now, when the strategy knows them without
   * asking anyone: the same (frozen) object for as long as they hold, so a caller may keep what
   * it builds from them until a different object comes back. Undefined when only `headers()`
   * can tell (a token to exchange, a missing credential: its error comes from `headers()`).
   */
  headersNow?(identity: Identity | undefined): Readonly<Record<string, string>> | undefined
}

/** Raised by a strategy when it cannot produce credentials; the call fails naming the backend. */
export class OutgoingAuthError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'OutgoingAuthError'
  }
}
