import type { Secret } from '../../log/secret.js'

/**
 * Who is calling, as established by incoming auth. Tokens are `Secret`s, so logging or
 * JSON-serializing an Identity never prints them.
 */
export interface Identity {
  /** `sub` of the verified token, or `anonymous`. */
  subject: string
  /** Issuer that vouched for the subject; empty for anonymous. */
  issuer: string
  /** Verified claims (JWT payload or introspection response). */
  claims: Readonly<Record<string, unknown>>
  /** The caller's bearer token; never forwarded to backends. */
  token: Secret | undefined
  /** Upstream provider name → access token. Empty in Mode A. */
  upstreamTokens: Readonly<Record<string, Secret>>
}

export const ANONYMOUS_IDENTITY: Identity = Object.freeze({
  subject: 'anonymous',
  issuer: '',
  claims: Object.freeze({}),
  token: undefined,
  upstreamTokens: Object.freeze({}),
})

/** The key a session is bound to: the same person from the same issuer. */
export function identityKey(identity: Identity): string {
  return `${identity.issuer}\u0000${identity.subject}`
}
