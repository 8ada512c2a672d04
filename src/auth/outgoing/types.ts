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
}

/** Raised by a strategy when it cannot produce credentials; the call fails naming the backend. */
export class OutgoingAuthError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'OutgoingAuthError'
  }
}
