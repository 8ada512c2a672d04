import { isIP } from 'node:net'

/** RFC 8252 §8.3 loopback names: the only hosts where plain http is acceptable. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1'
  return false
}

/**
 * Why `raw` is not acceptable as an https-or-loopback URL, or `undefined` when it is.
 * OAuth 2.1 §1.5 / RFC 8414 §2: endpoints use TLS; loopback http is allowed for local use.
 */
export function checkSecureUrl(raw: string): string | undefined {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'must be an absolute URL'
  }
  if (url.protocol === 'https:') return undefined
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return undefined
  if (url.protocol === 'http:') return 'must use https (http is allowed only for loopback hosts)'
  return `unsupported URL scheme ${url.protocol}`
}
