import * as oauth from 'oauth4webapi'
import { isLoopbackHost, type FetchLike } from '../net/index.js'
import { DcrError, type DcrStep } from './errors.js'

/** How the lifecycle talks to upstream authorization servers. */
export interface DcrHttp {
  fetch: FetchLike
  /** Upper bound on each request (default 10 s). */
  timeoutMs: number
}

/** oauth4webapi request options: our fetch, a timeout, and http only for loopback hosts. */
export function requestOptions(http: DcrHttp, url: string | URL) {
  const u = new URL(url)
  // OAuth 2.1 §1.5: TLS everywhere; the config schema allows loopback http and so do we.
  const insecure = u.protocol === 'http:' && isLoopbackHost(u.hostname)
  return {
    [oauth.customFetch]: http.fetch,
    ...(insecure ? { [oauth.allowInsecureRequests]: true } : {}),
    signal: AbortSignal.timeout(http.timeoutMs),
  }
}

/**
 * The operator's sentence for a failed request: a timeout, a refused connection, an OAuth error
 * body (`error` and `error_description` only) or a non-JSON answer. Never the raw body.
 */
export function toDcrError(
  step: DcrStep,
  what: string,
  url: string,
  err: unknown,
  timeoutMs: number,
): DcrError {
  if (err instanceof DcrError) return err
  if (err instanceof oauth.ResponseBodyError) {
    const description = err.error_description ? `: ${err.error_description.slice(0, 300)}` : ''
    return new DcrError(
      step,
      `${what} at ${url} failed with HTTP ${err.status} ${err.error.slice(0, 64)}${description}`,
      {
        status: err.status,
        error: err.error.slice(0, 64),
        ...(err.error_description ? { errorDescription: err.error_description.slice(0, 300) } : {}),
      },
    )
  }
  if (err instanceof oauth.OperationProcessingError) {
    const status = err.cause instanceof Response ? err.cause.status : undefined
    if (err.code === oauth.RESPONSE_IS_NOT_JSON) {
      return new DcrError(step, `${what} at ${url} did not answer JSON`, status ? { status } : {})
    }
    if (err.code === oauth.RESPONSE_IS_NOT_CONFORM && status !== undefined) {
      return new DcrError(step, `${what} at ${url} answered HTTP ${status}`, { status })
    }
    return new DcrError(
      step,
      `${what} at ${url} answered an invalid response: ${err.message.slice(0, 200)}`,
    )
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new DcrError(step, `${what} at ${url} timed out after ${timeoutMs} ms`)
  }
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code
  const reason =
    typeof code === 'string'
      ? code
      : err instanceof Error
        ? err.message.slice(0, 200)
        : 'unknown error'
  return new DcrError(step, `${what} at ${url} failed: ${reason}`)
}
