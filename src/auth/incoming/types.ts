import type { Identity } from './identity.js'

/**
 * What authentication reads of a request: its headers, and a signal that aborts work nobody waits
 * for any more (the client went away). A web Request is one; /mcp's Node fast path passes its own.
 */
export interface AuthRequest {
  readonly headers: Pick<Headers, 'get'>
  readonly signal?: AbortSignal
}

/** Outcome of authenticating one HTTP request. */
export type AuthResult = { ok: true; identity: Identity } | { ok: false; response: Response }

/**
 * Incoming authentication for `/mcp`. Implementations: anonymous, OIDC (JWT + optional RFC 7662
 * introspection). The failure response is complete (status, `WWW-Authenticate`, JSON body).
 */
export interface IncomingAuthenticator {
  readonly type: 'anonymous' | 'oidc'
  authenticate(request: AuthRequest): Promise<AuthResult>
  /** RFC 9728 document, or undefined when no protected-resource metadata applies (anonymous). */
  protectedResourceMetadata(): Record<string, unknown> | undefined
  close?(): Promise<void>
}
