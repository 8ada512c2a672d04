// Loopback redirect URIs as RFC 8252 §7.3 lets native apps register them: scheme, host, path
// and query are compared as sent; only the port is free. Parsed by hand, not with `URL`, because
// `URL` normalizes (default ports, dot segments, percent-encoding) and the comparison must not.
const LOOPBACK = /^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(?::(\d{1,5}))?([/?][^#]*)?$/

interface LoopbackParts {
  host: string
  /** Path and query exactly as written ('' when the URI ends after the authority). */
  rest: string
}

function parseLoopback(uri: string): LoopbackParts | undefined {
  const m = LOOPBACK.exec(uri)
  if (!m) return undefined
  const [, host = '', port, rest = ''] = m
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) return undefined
  return { host, rest }
}

/**
 * Whether `requested` may be used as the redirect URI of a client that registered `registered`.
 *
 * OAuth 2.1 §2.3.1: simple string comparison, nothing else: no prefix matching, no case folding,
 * no normalization. The one exception is RFC 8252 §7.3: for a registered
 * `http://127.0.0.1`, `http://[::1]` or `http://localhost` URI any port matches, provided scheme,
 * host, path and query are identical. A requested URI with a fragment never matches
 * (RFC 6749 §3.1.2).
 */
export function matchRedirectUri(registered: readonly string[], requested: string): boolean {
  if (requested.includes('#')) return false
  if (registered.includes(requested)) return true
  const req = parseLoopback(requested)
  if (!req) return false
  return registered.some((uri) => {
    const reg = parseLoopback(uri)
    return reg !== undefined && reg.host === req.host && reg.rest === req.rest
  })
}
