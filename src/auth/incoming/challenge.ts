/** RFC 6750 §3.1 error codes for the Bearer scheme. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope'

/** What a Bearer challenge says; the same shape serves the 401 and the 403. */
export interface BearerChallengeParams {
  /** RFC 9728 §5.1: where the client finds this resource's protected-resource metadata. */
  resourceMetadataUrl: string
  /** 401: the scopes to ask for; 403: the scopes the request needs. Omitted when empty. */
  scopes?: readonly string[]
  /** Absent when the request carried no (Bearer) credentials at all. */
  error?: BearerErrorCode
  /** Short, human-readable, never containing token material. */
  errorDescription?: string
}

// RFC 6750 §3.1 recommends 400 for invalid_request; we answer 401 so that every Bearer failure
// carries a challenge MCP clients act on (they re-run discovery from `resource_metadata`).
const STATUS: Record<BearerErrorCode, number> = {
  invalid_request: 401,
  invalid_token: 401,
  insufficient_scope: 403,
}

const DEFAULT_DESCRIPTION: Record<BearerErrorCode, string> = {
  invalid_request: 'malformed request',
  invalid_token: 'invalid token',
  insufficient_scope: 'insufficient scope',
}

// RFC 9110 §5.6.4 quoted-string. RFC 6750 §3 restricts scope and error_description to visible
// ASCII anyway; anything else (CR/LF above all) is dropped so a value can never split the header.
function quote(value: string): string {
  const visible = value.replace(/[^\x20-\x7e]/g, '')
  return `"${visible.replace(/["\\]/g, '\\$&')}"`
}

/**
 * The `WWW-Authenticate` value: `Bearer resource_metadata="…", scope="…", error="…",
 * error_description="…"`, in that order, each part only when it applies.
 */
export function buildBearerChallenge(params: BearerChallengeParams): string {
  const parts = [`resource_metadata=${quote(params.resourceMetadataUrl)}`]
  const scopes = params.scopes ?? []
  if (scopes.length > 0) parts.push(`scope=${quote(scopes.join(' '))}`)
  // RFC 6750 §3.1: a request without authentication information gets no error code.
  if (params.error) {
    parts.push(`error=${quote(params.error)}`)
    parts.push(
      `error_description=${quote(params.errorDescription ?? DEFAULT_DESCRIPTION[params.error])}`,
    )
  }
  return `Bearer ${parts.join(', ')}`
}

/**
 * The complete failure response: 401 (403 for `insufficient_scope`), the challenge header, a JSON
 * body `{ error, error_description }` and `Cache-Control: no-store`.
 */
export function buildBearerErrorResponse(params: BearerChallengeParams): Response {
  // The body is free-form (RFC 6750 §3 only defines the header), so even the no-credentials case
  // gets a readable JSON error; only the header must stay without an error code.
  const body = params.error
    ? {
        error: params.error,
        error_description: params.errorDescription ?? DEFAULT_DESCRIPTION[params.error],
      }
    : { error: 'invalid_request', error_description: 'missing bearer token' }
  return new Response(JSON.stringify(body), {
    status: params.error ? STATUS[params.error] : 401,
    headers: {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'www-authenticate': buildBearerChallenge(params),
    },
  })
}
