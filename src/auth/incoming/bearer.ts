/** Outcome of reading Bearer credentials from a request. */
export type BearerExtraction =
  | { kind: 'missing' }
  | { kind: 'malformed' }
  | { kind: 'token'; token: string }

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * Reads the access token from the `Authorization` header only. RFC 6750 §2.2 (form body) and §2.3
 * (`access_token` query parameter) are deliberately not supported: tokens in URLs end up in logs
 * and histories, so a token there is treated as no token at all.
 */
export function extractBearerToken(headers: Pick<Headers, 'get'>): BearerExtraction {
  const value = headers.get('authorization')
  if (value === null || value === '') return { kind: 'missing' }
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  // RFC 6750 §3.1: another scheme (Basic, DPoP, …) is "lacking authentication information" for us.
  // RFC 9110 §11.1: the scheme name is case-insensitive.
  if (scheme.toLowerCase() !== 'bearer') return { kind: 'missing' }
  const token = space === -1 ? '' : value.slice(space + 1).replace(/^ +/, '')
  // Two Authorization headers arrive joined by ", " and fail here too.
  if (!B64TOKEN.test(token)) return { kind: 'malformed' }
  return { kind: 'token', token }
}
