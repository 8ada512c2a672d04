import type { Identity } from './identity.js'

/** Outcome of authenticating one HTTP request. */
export type AuthResult = { ok: true; identity: Identity } | { ok: false; response: Response }

/**
 * Incoming authentication for `/mcp`. Implementations: anonymous, OIDC (JWT + optional RFC 7662
 * introspection). The failure response is complete (status, `WWW-Authenticate`, JSON body).
 */
export interface IncomingAuthenticator {
  readonly type: 'anonymous' | 'oidc'
  authenticate(request: Request): Promise<AuthResult>
  /** RFC 9728 document, or undefined when no protected-resource metadata applies (anonymous). */
  protectedResourceMetadata(): Record<string, unknown> | undefined
  close?(): Promise<void>
}
