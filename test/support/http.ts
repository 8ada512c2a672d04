// Small HTTP helpers for tests: a manual redirect follower with a naive cookie jar (headless
// OAuth authorization flows) and a free-port finder.
import { createServer } from 'node:net'

/** Cookie name -> value. Domain/path/expiry attributes are ignored (everything is loopback). */
export type CookieJar = Map<string, string>

export interface FollowRedirectsOptions {
  /** Reuse a jar across calls (e.g. to keep an IdP session); a fresh one is used otherwise. */
  jar?: CookieJar
  /** Upper bound on followed redirects (default 10). */
  maxRedirects?: number
  /** Extra request headers for every hop (the cookie header is managed here). */
  headers?: Record<string, string>
  /**
   * What the scripted browser answers on vmcp's consent page (a POST of the page's own form, as a
   * person clicking the button would). Without it, reaching the page is an error.
   */
  consent?: ConsentDecision
  /** Collects every consent form answered (e.g. for log canaries). */
  consentForms?: ConsentForm[]
}

export type ConsentDecision = 'approve' | 'deny'

/** The consent form of a page: where it posts and its hidden fields (HTML-unescaped). */
export interface ConsentForm {
  action: string
  fields: Record<string, string>
}

const unescapeHtml = (s: string) =>
  s.replace(
    /&(amp|lt|gt|quot|#39);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e] ?? '',
  )

/** Finds vmcp's consent form in an HTML page; undefined when the page has none. */
export function parseConsentForm(html: string): ConsentForm | undefined {
  const form = /<form method="post" action="([^"]*)">([\s\S]*?)<\/form>/.exec(html)
  if (!form || !/name="decision" value="approve"/.test(form[2] ?? '')) return undefined
  const fields: Record<string, string> = {}
  for (const m of (form[2] ?? '').matchAll(
    /<input type="hidden" name="([^"]+)" value="([^"]*)"\s*\/?>/g,
  )) {
    fields[m[1] ?? ''] = unescapeHtml(m[2] ?? '')
  }
  return { action: unescapeHtml(form[1] ?? ''), fields }
}

/**
 * Submits a consent form as the browser holding `jar` would (same-origin POST with its cookies).
 * Returns the raw answer (a redirect after a valid decision).
 */
export async function submitConsent(
  pageUrl: string | URL,
  form: ConsentForm,
  decision: ConsentDecision,
  jar: CookieJar,
  overrides: Record<string, string | undefined> = {},
): Promise<Response> {
  const page = new URL(pageUrl)
  const body = new URLSearchParams()
  for (const [k, v] of Object.entries({ ...form.fields, decision, ...overrides })) {
    if (v !== undefined) body.set(k, v)
  }
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    origin: page.origin,
  }
  if (jar.size > 0) headers.cookie = cookieHeader(jar)
  const res = await fetch(new URL(form.action, page), {
    method: 'POST',
    redirect: 'manual',
    headers,
    body,
  })
  storeCookies(jar, res)
  return res
}

/** Stores every `Set-Cookie` of a response in the jar (Node 20: `headers.getSetCookie()`). */
export function storeCookies(jar: CookieJar, res: Response): void {
  for (const setCookie of res.headers.getSetCookie()) {
    const [pair = ''] = setCookie.split(';')
    const eq = pair.indexOf('=')
    if (eq <= 0) continue
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    // Max-Age=0 / past Expires means "delete"; oidc-provider does this for its resume cookies.
    if (/;\s*max-age=0\b/i.test(setCookie) || /;\s*expires=Thu, 01 Jan 1970/i.test(setCookie)) {
      jar.delete(name)
    } else {
      jar.set(name, value)
    }
  }
}

/** Serializes the jar as a `Cookie` request header value. */
export function cookieHeader(jar: CookieJar): string {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
}

/**
 * GETs `url` with `redirect: 'manual'`, carrying cookies, and follows `Location` headers until one
 * starts with `stopPrefix` (typically the OAuth redirect_uri, which is never contacted). Returns
 * that final URL. Throws if a hop answers without a `Location` or after too many redirects.
 */
export async function followRedirectsWithCookies(
  url: string | URL,
  stopPrefix: string,
  options: FollowRedirectsOptions = {},
): Promise<URL> {
  const jar = options.jar ?? new Map<string, string>()
  const max = options.maxRedirects ?? 10
  let current = new URL(url).href
  if (current.startsWith(stopPrefix)) return new URL(current)
  for (let i = 0; i < max; i++) {
    const headers: Record<string, string> = { ...options.headers }
    if (jar.size > 0) headers.cookie = cookieHeader(jar)
    let res = await fetch(current, { redirect: 'manual', headers })
    storeCookies(jar, res)
    let location = res.headers.get('location')
    if (!location && res.status === 200 && options.consent) {
      const html = await res.text()
      const form = parseConsentForm(html)
      if (!form)
        throw new Error(`no redirect and no consent form at ${current}: ${html.slice(0, 500)}`)
      options.consentForms?.push(form)
      res = await submitConsent(current, form, options.consent, jar)
      location = res.headers.get('location')
    }
    if (!location) {
      const body = await res.text().catch(() => '')
      throw new Error(`no redirect from ${current} (status ${res.status}): ${body.slice(0, 500)}`)
    }
    await res.body?.cancel()
    current = new URL(location, current).href
    if (current.startsWith(stopPrefix)) return new URL(current)
  }
  throw new Error(`too many redirects (> ${max}) without reaching ${stopPrefix}`)
}

/**
 * A free TCP port for a test that must know its port before it binds (an issuer URL, a launched
 * backend). Ports are taken below the kernel's ephemeral range (32768–60999 on Linux), in a slice
 * of 400 per vitest worker: the OS never hands these out for `listen(0)` or outgoing connections
 * and no other worker picks from the same slice, so the port cannot be taken between this call and
 * the test's own bind (the race `listen(0)`-then-close had under load). Each port is checked
 * bindable and never handed out twice in one process.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < PORT_SLICE; i++) {
    const port = PORT_BASE + ((portCursor++ + portStart) % PORT_SLICE)
    if (await canBind(port, host)) return port
  }
  throw new Error(`no free port in ${PORT_BASE}..${PORT_BASE + PORT_SLICE - 1}`)
}

const PORT_SLICE = 400
const PORT_BASE = 20000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 30) * PORT_SLICE
const portStart = Math.floor(Math.random() * PORT_SLICE)
let portCursor = 0

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, host, () => srv.close(() => resolve(true)))
  })
}

/** `Authorization: Basic` value per RFC 6749 §2.3.1 (form-urlencoded id and secret). */
export function basicAuth(clientId: string, clientSecret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`
}

export interface JsonResponse<T = Record<string, unknown>> {
  status: number
  headers: Headers
  body: T
}

/**
 * POSTs an `application/x-www-form-urlencoded` body and parses the JSON answer (any status).
 * Array values are sent as repeated parameters.
 */
export async function postForm<T = Record<string, unknown>>(
  url: string,
  params: Record<string, string | string[] | undefined>,
  headers: Record<string, string> = {},
): Promise<JsonResponse<T>> {
  const body = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue
    for (const item of Array.isArray(v) ? v : [v]) body.append(k, item)
  }
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text ? JSON.parse(text) : {}
  } catch {
    throw new Error(`non-JSON answer from ${url} (status ${res.status}): ${text.slice(0, 500)}`)
  }
  return { status: res.status, headers: res.headers, body: parsed as T }
}
