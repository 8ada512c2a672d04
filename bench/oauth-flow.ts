// A headless OAuth 2.1 client for vmcp in Mode B: dynamic registration of a public client,
// authorization code + PKCE through the upstream IdP (manual redirects with a cookie jar, no
// browser), and refresh_token grants.
import { createHash, randomBytes } from 'node:crypto'
import type { Pool } from 'undici'

/** Nothing listens here: the flow stops at the redirect that points to it. */
export const CLIENT_REDIRECT = 'http://127.0.0.1:9/callback'

export interface TokenSet {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token?: string
  scope?: string
}

type CookieJar = Map<string, string>

function storeCookies(jar: CookieJar, res: Response): void {
  for (const setCookie of res.headers.getSetCookie()) {
    const [pair = ''] = setCookie.split(';')
    const eq = pair.indexOf('=')
    if (eq <= 0) continue
    const name = pair.slice(0, eq).trim()
    // Max-Age=0 or an epoch Expires deletes (oidc-provider does this to its resume cookies).
    if (/;\s*max-age=0\b/i.test(setCookie) || /;\s*expires=Thu, 01 Jan 1970/i.test(setCookie)) {
      jar.delete(name)
    } else {
      jar.set(name, pair.slice(eq + 1).trim())
    }
  }
}

/**
 * The scripted user clicks Allow on vmcp's consent page: POSTs the page's own form (its hidden
 * fields and `decision=approve`) with the browser's cookies, as a browser would.
 */
async function approveConsent(pageUrl: string, html: string, jar: CookieJar): Promise<Response> {
  const form = /<form method="post" action="([^"]*)">([\s\S]*?)<\/form>/.exec(html)
  if (!form) throw new Error(`no redirect and no consent form at ${pageUrl}: ${html.slice(0, 300)}`)
  const body = new URLSearchParams({ decision: 'approve' })
  for (const m of (form[2] ?? '').matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\s*\/?>/g)) {
    body.set(m[1] ?? '', (m[2] ?? '').replace(/&amp;/g, '&'))
  }
  const action = new URL((form[1] ?? '').replace(/&amp;/g, '&'), pageUrl)
  const headers = {
    'content-type': 'application/x-www-form-urlencoded',
    origin: new URL(pageUrl).origin,
    cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
  }
  const res = await fetch(action, { method: 'POST', redirect: 'manual', headers, body })
  storeCookies(jar, res)
  return res
}

/**
 * GETs `url` without following redirects automatically, carrying cookies (all hosts are loopback,
 * so one naive jar serves vmcp and the IdP), approving vmcp's consent page when it shows, until a
 * Location starts with `stopPrefix`.
 */
export async function followRedirectsWithCookies(url: string, stopPrefix: string, max = 12): Promise<URL> {
  const jar: CookieJar = new Map()
  let current = url
  for (let i = 0; i < max; i++) {
    const headers: Record<string, string> = {}
    if (jar.size > 0) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    let res = await fetch(current, { redirect: 'manual', headers })
    storeCookies(jar, res)
    if (res.status === 200 && (res.headers.get('content-type') ?? '').startsWith('text/html')) {
      res = await approveConsent(current, await res.text(), jar)
    }
    const location = res.headers.get('location')
    if (!location) {
      const body = await res.text().catch(() => '')
      throw new Error(`no redirect from ${current} (HTTP ${res.status}): ${body.slice(0, 300)}`)
    }
    await res.body?.cancel()
    current = new URL(location, current).href
    if (current.startsWith(stopPrefix)) return new URL(current)
  }
  throw new Error(`more than ${max} redirects without reaching ${stopPrefix}`)
}

async function postForm(url: string, params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  })
  const text = await res.text()
  try {
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> }
  } catch {
    throw new Error(`non-JSON answer from ${url} (HTTP ${res.status}): ${text.slice(0, 300)}`)
  }
}

function tokenSet(what: string, res: { status: number; body: Record<string, unknown> }): TokenSet {
  if (res.status !== 200 || typeof res.body.access_token !== 'string') {
    throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`)
  }
  return res.body as unknown as TokenSet
}

export class ModeBClient {
  private constructor(
    readonly issuer: string,
    readonly clientId: string,
    readonly resource: string,
    readonly scope: string,
  ) {}

  /** RFC 7591 registration of a public (PKCE-only) client at `${issuer}/oauth/register`. */
  static async register(options: { issuer: string; resource: string; scope: string }): Promise<ModeBClient> {
    const res = await fetch(`${options.issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'vmcp-bench',
        redirect_uris: [CLIENT_REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    })
    const body = (await res.json()) as { client_id?: string }
    if (res.status !== 201 || !body.client_id) {
      throw new Error(`registration: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`)
    }
    return new ModeBClient(options.issuer, body.client_id, options.resource, options.scope)
  }

  /** authorize → upstream IdP (auto-login) → vmcp callback → redirect_uri, then the code grant. */
  async signIn(): Promise<TokenSet> {
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const state = randomBytes(12).toString('base64url')
    const authorize = new URL(`${this.issuer}/oauth/authorize`)
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: this.clientId,
      redirect_uri: CLIENT_REDIRECT,
      scope: this.scope,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: this.resource,
    })) {
      authorize.searchParams.set(k, v)
    }
    const back = await followRedirectsWithCookies(authorize.href, CLIENT_REDIRECT)
    const error = back.searchParams.get('error')
    if (error) throw new Error(`authorization: ${error} ${back.searchParams.get('error_description') ?? ''}`)
    if (back.searchParams.get('state') !== state) throw new Error('authorization: state mismatch')
    const code = back.searchParams.get('code')
    if (!code) throw new Error(`authorization: no code in ${back.href}`)
    const tokens = tokenSet(
      'code grant',
      await postForm(`${this.issuer}/oauth/token`, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: CLIENT_REDIRECT,
        code_verifier: verifier,
        client_id: this.clientId,
        resource: this.resource,
      }),
    )
    if (!tokens.refresh_token) throw new Error('code grant: no refresh token')
    return tokens
  }

  /** One refresh_token grant over a keep-alive pool on vmcp's origin (the load path). */
  async refresh(pool: Pool, refreshToken: string): Promise<TokenSet> {
    const res = await pool.request({
      path: new URL(`${this.issuer}/oauth/token`).pathname,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: this.clientId,
      }).toString(),
    })
    const text = await res.body.text()
    let body: Record<string, unknown>
    try {
      body = JSON.parse(text) as Record<string, unknown>
    } catch {
      throw new Error(`refresh: HTTP ${res.statusCode} ${text.slice(0, 200)}`)
    }
    const tokens = tokenSet('refresh', { status: res.statusCode, body })
    if (!tokens.refresh_token) throw new Error('refresh: no rotated refresh token')
    return tokens
  }
}
