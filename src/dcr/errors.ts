/** Which part of the registration lifecycle failed. */
export type DcrStep = 'store' | 'discovery' | 'registration' | 'renewal'

/**
 * A failed discovery, registration, renewal or cache access. The message is one sentence meant
 * for the operator's log, built only from URLs, status codes and the server's `error` /
 * `error_description`: never from a secret or a raw body.
 */
export class DcrError extends Error {
  constructor(
    readonly step: DcrStep,
    message: string,
    readonly details: { status?: number; error?: string; errorDescription?: string } = {},
  ) {
    super(message)
    this.name = 'DcrError'
  }
}

/**
 * The upstream cannot be used right now: not registered yet, registration failing, or its secret
 * expired and could not be renewed. Safe to show to the user who needs that upstream.
 */
export class DcrUnavailableError extends Error {
  constructor(
    readonly upstream: string,
    readonly reason: string,
  ) {
    super(`upstream ${upstream} is not available: ${reason}`)
    this.name = 'DcrUnavailableError'
  }
}
