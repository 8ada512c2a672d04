import type { Logger } from '../log/index.js'
import { StorageUnavailableError } from '../storage/index.js'
/**
 * Wire errors of the authorization server: RFC 6749 §5.2 token errors, RFC 7591 §3.2.2
 * registration errors and the few extension codes below. Their text is meant for the client, so a
 * description is a fixed sentence: never a token, code, secret or anything echoed from the request.
 */
export type OAuthErrorCode =
  // RFC 6749 §5.2 (token endpoint)
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  // RFC 6749 §4.1.2.1 (authorization endpoint)
  | 'access_denied'
  | 'unsupported_response_type'
  | 'server_error'
  | 'temporarily_unavailable'
  // RFC 8707 §2
  | 'invalid_target'
  // RFC 7009 §2.2.1
  | 'unsupported_token_type'
  // RFC 7591 §3.2.2
  | 'invalid_redirect_uri'
  | 'invalid_client_metadata'
  // Rate limiting; see rate-limit.ts for why this code.
  | 'too_many_requests'

/** RFC 6749 §5.2 JSON error body. */
export interface OAuthErrorBody {
  error: OAuthErrorCode
  error_description?: string
}

/**
 * A wire error thrown inside an endpoint and turned into a response at its edge with
 * `oauthErrorResponse`. Not for internal failures (those are logged and become `server_error`).
 */
export class OAuthError extends Error {
  readonly status: number
  readonly error: OAuthErrorCode
  readonly description: string | undefined
  readonly headers: Readonly<Record<string, string>>

  constructor(
    error: OAuthErrorCode,
    description?: string,
    options: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(description ? `${error}: ${description}` : error)
    this.name = 'OAuthError'
    this.error = error
    this.description = description
    this.status = options.status ?? defaultStatus(error)
    this.headers = options.headers ?? {}
  }
}

/** The status each code gets unless the caller says otherwise. */
export function defaultStatus(error: OAuthErrorCode): number {
  // RFC 6749 §5.2: invalid_client is 401 (the caller adds WWW-Authenticate when Basic was used).
  if (error === 'invalid_client') return 401
  if (error === 'server_error') return 500
  if (error === 'temporarily_unavailable') return 503
  if (error === 'too_many_requests') return 429
  return 400
}

// RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E (printable ASCII
// without '"' and '\'), so it can travel in a WWW-Authenticate parameter unchanged.
function cleanDescription(description: string): string {
  return description.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, ' ')
}

/**
 * A JSON error response: `{ error, error_description }` with `Cache-Control: no-store` and
 * `Pragma: no-cache` (RFC 6749 §5.1/§5.2). `status` defaults by code (invalid_client 401,
 * server_error 500, temporarily_unavailable 503, too_many_requests 429, otherwise 400). Returns a
 * plain `Response`, so Hono handlers return it directly and other callers can use it too.
 */
export function oauthError(
  status: number | undefined,
  error: OAuthErrorCode,
  description?: string,
  headers: Record<string, string> = {},
): Response {
  const body: OAuthErrorBody = { error }
  if (description) body.error_description = cleanDescription(description)
  return new Response(JSON.stringify(body), {
    status: status ?? defaultStatus(error),
    headers: {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...headers,
    },
  })
}

/** The response for a thrown OAuthError. */
export function oauthErrorResponse(
  err: OAuthError,
  headers: Record<string, string> = {},
): Response {
  return oauthError(err.status, err.error, err.description, { ...err.headers, ...headers })
}

/**
 * Runs an endpoint handler and maps what it throws to the wire: OAuthError as itself,
 * StorageUnavailableError as 503 `server_error` + Retry-After (RFC 6749 §5.2 has no
 * temporarily_unavailable outside the authorization endpoint, and token clients such as
 * oauth4webapi and the MCP SDK know server_error), anything else as 500 with details only logged.
 */
export async function answerOAuth(
  endpoint: string,
  logger: Logger,
  handle: () => Promise<Response>,
): Promise<Response> {
  try {
    return await handle()
  } catch (err) {
    if (err instanceof OAuthError) {
      logger.debug({ endpoint, error: err.error, description: err.description }, 'request refused')
      return oauthErrorResponse(err)
    }
    if (err instanceof StorageUnavailableError) {
      logger.error({ endpoint, err: err.message }, 'storage unavailable')
      return oauthError(503, 'server_error', 'authorization server storage unavailable', {
        'retry-after': '5',
      })
    }
    logger.error({ endpoint, err: err instanceof Error ? err.message : 'non-Error thrown' }, 'endpoint failed')
    return oauthError(500, 'server_error', 'internal error')
  }
}
