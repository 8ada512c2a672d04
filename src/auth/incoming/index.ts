/**
 * Incoming authentication: who is calling `/mcp`. Other domains import only from here.
 */

/**
 * An authenticator for `incomingAuth.type: anonymous`: every request becomes `ANONYMOUS_IDENTITY`.
 * It serves no protected-resource metadata; the caller should then not mount the RFC 9728 route.
 */
export { createAnonymousAuthenticator } from './anonymous.js'

/**
 * An authenticator for `incomingAuth.type: oidc`: JWT access tokens checked against the issuer's
 * JWKS (discovered lazily, retried with backoff after a failure), opaque tokens by RFC 7662
 * introspection when configured. Failures come back as complete 401/403 responses; the caller
 * returns them as they are and serves `protectedResourceMetadata()` at the URL it passed as
 * `resourceMetadataUrl`. It does not check `Origin`, rate-limit, or bind sessions to identities.
 */
export { createOidcAuthenticator } from './oidc.js'

/** Options of `createOidcAuthenticator`; `fetch` defaults to `createOutboundFetch()`. */
export type { OidcAuthenticatorOptions } from './oidc.js'

/** The authenticator contract and its per-request outcome. */
export type { AuthRequest, AuthResult, IncomingAuthenticator } from './types.js'

/** Who is calling; tokens inside are `Secret`s and never print. */
export type { Identity } from './identity.js'

/** The identity given to every request when incoming auth is anonymous. */
export { ANONYMOUS_IDENTITY } from './identity.js'

/** The key sessions are bound to (issuer + subject); compare keys, not whole identities. */
export { identityKey } from './identity.js'

/**
 * The RFC 6750 §3 `WWW-Authenticate` value, parameters in a fixed order, values quoted and
 * stripped of anything but visible ASCII. Leave `error` unset when the request had no credentials.
 */
export { buildBearerChallenge } from './challenge.js'

/**
 * A complete Bearer failure: 401 (403 for `insufficient_scope`), challenge header, JSON
 * `{ error, error_description }`, `Cache-Control: no-store`. The description goes to the client:
 * the caller must never put token material or internal details into it.
 */
export { buildBearerErrorResponse } from './challenge.js'

/** Inputs of the challenge builders, and the RFC 6750 §3.1 error codes. */
export type { BearerChallengeParams, BearerErrorCode } from './challenge.js'

/**
 * Reads `Authorization: Bearer <token>` (RFC 6750 §2.1) and nothing else: tokens in the query or
 * the body are ignored. Another scheme counts as `missing`; a bad Bearer value as `malformed`.
 */
export { extractBearerToken } from './bearer.js'

/** Result of `extractBearerToken`. */
export type { BearerExtraction } from './bearer.js'

/** Builds the RFC 9728 §2 protected-resource metadata document (header method only). */
export { buildProtectedResourceMetadata } from './resource-metadata.js'

/** Inputs of `buildProtectedResourceMetadata`. */
export type { ProtectedResourceMetadataOptions } from './resource-metadata.js'

/** Granted scopes from `scope` and `scp` (string or array), for scope checks in other verifiers. */
export { readTokenScopes } from './scopes.js'

/** Required scopes absent from a granted set; non-empty means answer 403 `insufficient_scope`. */
export { findMissingScopes } from './scopes.js'

/**
 * Mode B: wraps the OIDC authenticator so a verified token's `tsid` loads the user's upstream
 * tokens into `identity.upstreamTokens`; refresh failure → 401 naming the upstream, storage → 503.
 */
export { withUpstreamTokens, type UpstreamTokenAuthOptions } from './upstream-tokens.js'
