// Attacks on the authorization endpoint that the consent page and the browser binding stop
// (issue 6): confused deputy, a callback carried to another browser, open redirects, CSRF on the
// consent form, clickjacking. Real HTTP on 127.0.0.1, real oidc-provider upstreams.
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PENDING_CONSENT_KIND } from '../../../../src/authserver/authorize-endpoint.js'
import {
  cookieHeader,
  followRedirectsWithCookies,
  parseConsentForm,
  storeCookies,
  submitConsent,
  type ConsentForm,
  type CookieJar,
} from '../../../support/http.js'
import {
  baseClient as registered,
  CLIENT_ID,
  CLIENT_REDIRECT,
  LOOPBACK_CLIENT_ID,
  startChain,
  type Chain,
} from './harness.js'

const ATTACKER_REDIRECT = 'https://attacker.example/cb'
const TWO_URIS = ['https://app.example/one', 'https://app.example/two']

let chain: Chain

beforeAll(async () => {
  chain = await startChain()
  // Anyone may register a client through DCR; this one is the attacker's.
  chain.clients.set(
    'attacker',
    registered('attacker', [ATTACKER_REDIRECT], { clientName: 'Helpful <Tools> & "Co"' }),
  )
  chain.clients.set('two-uris', registered('two-uris', TWO_URIS, { clientName: 'Two URIs' }))
  chain.clients.set(
    'https://tools.example/client.json',
    registered('https://tools.example/client.json', ['https://tools.example/cb'], {
      clientName: 'Tools',
      cimd: true,
    }),
  )
})

afterAll(async () => {
  await chain?.close()
})

/** One GET from the browser holding `jar` (cookies sent and kept, redirects not followed). */
async function get(jar: CookieJar, url: URL | string, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    redirect: 'manual',
    headers: { ...headers, ...(jar.size > 0 ? { cookie: cookieHeader(jar) } : {}) },
  })
  storeCookies(jar, res)
  return res
}

/** Opens the consent page for `params` in the browser `jar`; returns the page and its form. */
async function consentPage(jar: CookieJar, params: Record<string, string | undefined> = {}) {
  const url = chain.authorizeUrl(params)
  const res = await get(jar, url)
  expect(res.status).toBe(200)
  const html = await res.text()
  const form = parseConsentForm(html)
  expect(form).toBeDefined()
  return { url, res, html, form: form! }
}

const attackerLink = (params: Record<string, string | undefined> = {}) =>
  chain.authorizeUrl({ client_id: 'attacker', redirect_uri: ATTACKER_REDIRECT, ...params })

/** A complete sign-in through a client the person approves, in browser `jar`. */
async function signIn(jar: CookieJar, params: Record<string, string | undefined> = {}) {
  const redirect = params.redirect_uri ?? CLIENT_REDIRECT
  return followRedirectsWithCookies(chain.authorizeUrl(params), redirect, {
    jar,
    consent: 'approve',
    maxRedirects: 30,
  })
}

/** Starts a sign-in in `jar`, approves it, and stops where a URL starts with `prefix`. */
const approveAndStopAt = (jar: CookieJar, prefix: string) =>
  followRedirectsWithCookies(chain.authorizeUrl(), prefix, {
    jar,
    consent: 'approve',
    maxRedirects: 30,
  })

describe('MCP security best practices, confused deputy: the consent page comes first', () => {
  it("a victim signed in at both upstreams who follows an attacker client's link sees the consent page; no code reaches the attacker", async () => {
    const victim: CookieJar = new Map()
    const done = await signIn(victim)
    expect(done.searchParams.get('code')).toBeTruthy()
    const sessionCookies = [...victim.keys()].filter((k) => !k.startsWith('vmcp-'))
    expect(sessionCookies.length).toBeGreaterThan(0) // the IdPs remember her

    const grants = chain.grants.length
    const callbacks = chain.callbacks.length
    const res = await get(victim, attackerLink())
    expect(res.status).toBe(200)
    expect(res.headers.get('location')).toBeNull()
    const html = await res.text()
    expect(html).toContain('Helpful &lt;Tools&gt; &amp; &quot;Co&quot;')
    expect(html).toContain('attacker.example')
    // Neither upstream was visited and nothing was issued.
    expect(chain.callbacks.length).toBe(callbacks)
    expect(chain.grants.length).toBe(grants)
    // A browser following every redirect stops at the page: it never reaches the attacker.
    await expect(
      followRedirectsWithCookies(attackerLink(), 'https://attacker.example/', { jar: victim }),
    ).rejects.toThrow(/no redirect .* \(status 200\)/)
    expect(chain.grants.length).toBe(grants)
  })

  it('the page names the client, its id, the redirect host, scopes, resource and upstreams, all escaped', async () => {
    const { html } = await consentPage(new Map(), {
      client_id: 'attacker',
      redirect_uri: ATTACKER_REDIRECT,
      scope: 'openid email',
    })
    expect(html).toMatch(/^<!doctype html>\s*<html lang="en">/)
    expect(html).not.toContain('<Tools>')
    expect(html).toContain('<h1>')
    expect(html).toContain('<code>attacker</code>')
    expect(html).toContain('<code>attacker.example</code>')
    expect(html).toContain('<code>openid</code>')
    expect(html).toContain('<code>email</code>')
    expect(html).toContain(`<code>${chain.resource}</code>`)
    expect(html).toContain(`corp (<code>${new URL(chain.idp1.issuer).host}</code>)`)
    expect(html).toContain(`second (<code>${new URL(chain.idp2.issuer).host}</code>)`)
    expect(html).toMatch(/<button[^>]*name="decision" value="approve">Allow<\/button>/)
    expect(html).toMatch(/<button[^>]*name="decision" value="deny">Deny<\/button>/)
    expect(html).not.toContain('<script')
  })

  it('a CIMD client is shown by the host that publishes its document', async () => {
    const { html } = await consentPage(new Map(), {
      client_id: 'https://tools.example/client.json',
      redirect_uri: 'https://tools.example/cb',
    })
    expect(html).toMatch(/<dt>Client ID<\/dt>\s*<dd><code>tools.example<\/code>/)
  })

  it("RFC 9700 §4.16 clickjacking: frame-ancestors 'none', a strict default-src, X-Frame-Options DENY, no-store", async () => {
    const { res, html } = await consentPage(new Map())
    const csp = res.headers.get('content-security-policy')!
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).toContain("default-src 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    // Same-origin only: the form POST keeps its Origin, other sites get no Referer.
    expect(res.headers.get('referrer-policy')).toBe('same-origin')
    // The one inline style is allowed by its hash (CSP 3), so the page is styled without
    // 'unsafe-inline': the hash must cover the exact text of the <style> element.
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!
    const hash = createHash('sha256').update(style).digest('base64')
    expect(csp).toContain(`style-src 'sha256-${hash}'`)
  })

  it('the pending request lives server-side: the form carries only an id and a CSRF token', async () => {
    const { form } = await consentPage(new Map())
    expect(Object.keys(form.fields).sort()).toEqual(['consent', 'csrf'])
    // Stored under SHA-256 of the id, never the id itself.
    expect(await chain.store.get(PENDING_CONSENT_KIND, form.fields.consent!)).toBeUndefined()
    expect(chain.store.ids(PENDING_CONSENT_KIND).length).toBeGreaterThan(0)
  })
})

describe('the consent POST', () => {
  const forgeries: [string, (page: { url: URL; form: ConsentForm }) => Promise<Response>][] = [
    [
      'without a CSRF token',
      ({ url, form }) => submitConsent(url, form, 'approve', jarOf(url), { csrf: undefined }),
    ],
    [
      'with a wrong CSRF token',
      ({ url, form }) => submitConsent(url, form, 'approve', jarOf(url), { csrf: 'x'.repeat(43) }),
    ],
    [
      'with the CSRF token of another consent page',
      async ({ url, form }) => {
        const other = await consentPage(jarOf(url))
        return submitConsent(url, form, 'approve', jarOf(url), { csrf: other.form.fields.csrf })
      },
    ],
    [
      'from another browser (its own transaction cookie)',
      async ({ url, form }) => {
        const other: CookieJar = new Map()
        await consentPage(other)
        return submitConsent(url, form, 'approve', other)
      },
    ],
    [
      'from a browser without cookies',
      ({ url, form }) => submitConsent(url, form, 'approve', new Map()),
    ],
    [
      'from another origin',
      ({ url, form }) => postAs(url, form, { origin: 'https://attacker.example' }),
    ],
    [
      'marked cross-site by the browser (Sec-Fetch-Site)',
      ({ url, form }) => postAs(url, form, { 'sec-fetch-site': 'cross-site' }),
    ],
  ]
  const jars = new Map<string, CookieJar>()
  const jarOf = (url: URL) => jars.get(url.href)!
  /** The page's own form and cookies, posted with browser headers a real form post would not have. */
  function postAs(url: URL, form: ConsentForm, headers: Record<string, string>) {
    return fetch(new URL(form.action, url), {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: cookieHeader(jarOf(url)),
        ...headers,
      },
      body: new URLSearchParams({ ...form.fields, decision: 'approve' }),
    })
  }

  it.each(forgeries)('CSRF: a POST %s is refused and changes nothing', async (_, forge) => {
    const jar: CookieJar = new Map()
    const page = await consentPage(jar)
    jars.set(page.url.href, jar)
    const callbacks = chain.callbacks.length
    const res = await forge(page)
    expect([400, 403]).toContain(res.status)
    expect(res.headers.get('location')).toBeNull()
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.getSetCookie().filter((c) => c.startsWith('vmcp-consent'))).toEqual([])
    expect(chain.callbacks.length).toBe(callbacks)
    // The real browser can still answer its page.
    const real = await submitConsent(page.url, page.form, 'approve', jar)
    expect(real.status).toBe(302)
    expect(real.headers.get('location')).toMatch(
      new RegExp(`^${chain.idp1.metadata.authorization_endpoint}\\?`),
    )
  })

  it('Origin: null (no-referrer settings) is neither proof nor refusal: the token and cookie decide', async () => {
    const jar: CookieJar = new Map()
    const page = await consentPage(jar)
    jars.set(page.url.href, jar)
    expect(
      (
        await postAs(
          page.url,
          { ...page.form, fields: { ...page.form.fields, csrf: 'x' } },
          { origin: 'null' },
        )
      ).status,
    ).toBe(403)
    const res = await postAs(page.url, page.form, {
      origin: 'null',
      'sec-fetch-site': 'same-origin',
    })
    expect(res.status).toBe(302)
  })

  it('a POST from another browser says so', async () => {
    const page = await consentPage(new Map())
    const other: CookieJar = new Map()
    await consentPage(other)
    const res = await submitConsent(page.url, page.form, 'approve', other)
    expect(res.status).toBe(400)
    expect(await res.text()).toContain('This sign-in was started in another browser')
  })

  it('RFC 6749 §4.1.2.1: deny → access_denied with state and iss (RFC 9207); no upstream is visited', async () => {
    const jar: CookieJar = new Map()
    const page = await consentPage(jar)
    const callbacks = chain.callbacks.length
    const res = await submitConsent(page.url, page.form, 'deny', jar)
    expect(res.status).toBe(302)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const location = new URL(res.headers.get('location')!)
    expect(location.origin + location.pathname).toBe(CLIENT_REDIRECT)
    expect(Object.fromEntries(location.searchParams)).toEqual({
      error: 'access_denied',
      error_description: 'the user denied the request',
      state: 'client-state-123',
      iss: chain.issuer,
    })
    expect(chain.callbacks.length).toBe(callbacks)
    // Nothing remembered: the next request asks again.
    expect(res.headers.getSetCookie()).toEqual([])
    await consentPage(jar)
  })

  it('an answered consent cannot be answered again', async () => {
    const jar: CookieJar = new Map()
    const page = await consentPage(jar)
    expect((await submitConsent(page.url, page.form, 'approve', jar)).status).toBe(302)
    const again = await submitConsent(page.url, page.form, 'approve', jar)
    expect(again.status).toBe(400)
    expect(await again.text()).toContain('This sign-in request has expired')
  })

  it('a POST without a decision is refused and keeps the request', async () => {
    const jar: CookieJar = new Map()
    const page = await consentPage(jar)
    const res = await submitConsent(page.url, page.form, 'approve', jar, { decision: 'maybe' })
    expect(res.status).toBe(400)
    expect((await submitConsent(page.url, page.form, 'approve', jar)).status).toBe(302)
  })
})

describe('remembered consent (sealed cookie, per browser and client)', () => {
  it('skips the page for the same client, redirect URI and scopes, in the same browser only', async () => {
    const jar: CookieJar = new Map()
    await signIn(jar)
    const sealed = jar.get('vmcp-consent')!
    expect(sealed).toMatch(/^v1\./)
    // The cookie is sealed: no client id in it.
    expect(sealed).not.toContain(CLIENT_ID)

    const again = await get(jar, chain.authorizeUrl())
    expect(again.status).toBe(302)
    expect(again.headers.get('location')).toMatch(
      new RegExp(`^${chain.idp1.metadata.authorization_endpoint}\\?`),
    )
    // The whole sign-in completes without the page.
    const done = await followRedirectsWithCookies(chain.authorizeUrl(), CLIENT_REDIRECT, {
      jar,
      maxRedirects: 30,
    })
    expect(done.searchParams.get('code')).toBeTruthy()

    // Another client in the same browser, or the same client in another browser: asked.
    await consentPage(jar, {
      client_id: LOOPBACK_CLIENT_ID,
      redirect_uri: 'http://127.0.0.1/callback',
    })
    await consentPage(new Map())
  })

  it('asks again when the scopes change', async () => {
    const jar: CookieJar = new Map()
    await signIn(jar)
    await consentPage(jar, { scope: 'openid profile email' })
    await consentPage(jar, { scope: 'openid' })
  })

  it('asks again for another redirect URI of the client', async () => {
    const jar: CookieJar = new Map()
    const one = { client_id: 'two-uris', redirect_uri: TWO_URIS[0] }
    const page = await consentPage(jar, one)
    expect((await submitConsent(page.url, page.form, 'approve', jar)).status).toBe(302)
    expect((await get(jar, chain.authorizeUrl(one))).status).toBe(302)
    await consentPage(jar, { client_id: 'two-uris', redirect_uri: TWO_URIS[1] })
  })

  it('a tampered or foreign consent cookie counts as no approval', async () => {
    const jar: CookieJar = new Map()
    await signIn(jar)
    const sealed = jar.get('vmcp-consent')!
    jar.set('vmcp-consent', `${sealed.slice(0, -2)}${sealed.endsWith('A') ? 'B' : 'A'}`)
    await consentPage(jar)
    // Sealed under the same key but not a consent record (e.g. an upstream token row).
    jar.set('vmcp-consent', chain.sealer.seal(JSON.stringify({ a: [] })))
    await consentPage(jar)
  })
})

describe('RFC 9700 §4.11.2: no open redirects for clients the person has not approved', () => {
  const cases: [string, Record<string, string | undefined>, string, string][] = [
    [
      'response_type=token',
      { response_type: 'token' },
      'unsupported_response_type',
      'response_type must be code',
    ],
    [
      'an unsupported scope',
      { scope: 'openid admin' },
      'invalid_scope',
      'unsupported scope: admin',
    ],
    [
      'PKCE plain',
      { code_challenge_method: 'plain' },
      'invalid_request',
      'code_challenge_method must be S256',
    ],
    [
      'a foreign resource',
      { resource: 'https://elsewhere.example/mcp' },
      'invalid_target',
      'resource is not a registered audience',
    ],
  ]

  it.each(cases)(
    '%s for a DCR client → 400 error page, never a redirect',
    async (_, params, error, description) => {
      const res = await get(new Map(), attackerLink(params))
      expect(res.status).toBe(400)
      expect(res.headers.get('location')).toBeNull()
      expect(await res.json()).toEqual({ error, error_description: description })
    },
  )

  it('a browser gets the error as an HTML page with the page headers', async () => {
    const res = await get(new Map(), attackerLink({ response_type: 'token' }), {
      accept: 'text/html,*/*',
    })
    expect(res.status).toBe(400)
    expect(res.headers.get('location')).toBeNull()
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    const html = await res.text()
    expect(html).toContain('This sign-in request is not valid')
    expect(html).toContain('<code>unsupported_response_type</code>')
  })

  it('once this browser approved the client, errors go back to it with state and iss', async () => {
    const jar: CookieJar = new Map()
    await signIn(jar)
    const res = await get(jar, chain.authorizeUrl({ response_type: 'token' }))
    expect(res.status).toBe(302)
    expect(Object.fromEntries(new URL(res.headers.get('location')!).searchParams)).toEqual({
      error: 'unsupported_response_type',
      error_description: 'response_type must be code',
      state: 'client-state-123',
      iss: chain.issuer,
    })
    // Another browser is not trusted with that redirect.
    expect((await get(new Map(), chain.authorizeUrl({ response_type: 'token' }))).status).toBe(400)
  })
})

describe('browser binding: every callback needs the transaction cookie of the browser that started', () => {
  it('sets a random HttpOnly, SameSite=Lax transaction cookie on /oauth/authorize', async () => {
    const { res } = await consentPage(new Map())
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('vmcp-tx='))!
    expect(cookie).toMatch(/^vmcp-tx=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/)
  })

  it('a callback carried to another browser is a 400 page; the browser that started still completes', async () => {
    const starter: CookieJar = new Map()
    // The attacker's move: start a sign-in and stop at the upstream's authorization URL ...
    const upstreamUrl = await approveAndStopAt(starter, chain.idp1.metadata.authorization_endpoint)
    // ... and hand it to a victim, whose browser signs in at the IdP and returns to vmcp.
    const victim: CookieJar = new Map()
    const callback = await followRedirectsWithCookies(
      upstreamUrl,
      `${chain.issuer}/oauth/callback`,
      { jar: victim },
    )
    const codeExchanges = chain.wire.filter((w) => w.grantType === 'authorization_code').length
    const grants = chain.grants.length
    for (const jar of [victim, new Map<string, string>()]) {
      const res = await get(jar, callback)
      expect(res.status).toBe(400)
      expect(res.headers.get('location')).toBeNull()
      expect(res.headers.get('x-frame-options')).toBe('DENY')
      expect(await res.text()).toContain('This sign-in was started in another browser')
    }
    // Nothing was redeemed upstream, nothing issued.
    expect(chain.wire.filter((w) => w.grantType === 'authorization_code').length).toBe(
      codeExchanges,
    )
    expect(chain.grants.length).toBe(grants)

    // Not consumed: the real browser finishes the very same sign-in.
    const done = await followRedirectsWithCookies(callback, CLIENT_REDIRECT, {
      jar: starter,
      maxRedirects: 30,
    })
    expect(done.searchParams.get('code')).toBeTruthy()
    expect(chain.grants.length).toBe(grants + 1)
  })

  it('the second leg is bound too', async () => {
    const starter: CookieJar = new Map()
    const toIdp2 = await approveAndStopAt(starter, chain.idp2.metadata.authorization_endpoint)
    const callback = await followRedirectsWithCookies(toIdp2, `${chain.issuer}/oauth/callback`, {
      jar: new Map(),
    })
    expect((await get(new Map(), callback)).status).toBe(400)
    const done = await followRedirectsWithCookies(callback, CLIENT_REDIRECT, { jar: starter })
    expect(done.searchParams.get('code')).toBeTruthy()
  })
})

describe('consent.trustedClients and an https issuer', () => {
  let trusted: Chain

  beforeAll(async () => {
    trusted = await startChain({ trustedClients: [CLIENT_ID], issuerScheme: 'https' })
  })

  afterAll(async () => {
    await trusted?.close()
  })

  it('a trusted first-party client skips the page; others still get it', async () => {
    const jar: CookieJar = new Map()
    const res = await get(jar, trusted.authorizeUrl())
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toMatch(
      new RegExp(`^${trusted.idp1.metadata.authorization_endpoint}\\?`),
    )
    const other = await get(
      jar,
      trusted.authorizeUrl({
        client_id: LOOPBACK_CLIENT_ID,
        redirect_uri: 'http://127.0.0.1/callback',
      }),
    )
    expect(other.status).toBe(200)
  })

  it('RFC 6265bis §4.1.3.2: __Host- cookies, Secure, when the issuer is https', async () => {
    const jar: CookieJar = new Map()
    const page = await get(
      jar,
      trusted.authorizeUrl({
        client_id: LOOPBACK_CLIENT_ID,
        redirect_uri: 'http://127.0.0.1/callback',
      }),
    )
    const tx = page.headers.getSetCookie().find((c) => c.startsWith('__Host-vmcp-tx='))!
    expect(tx).toMatch(
      /^__Host-vmcp-tx=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    )
    const form = parseConsentForm(await page.text())!
    const res = await submitConsent(trusted.authorizeUrl(), form, 'approve', jar)
    expect(res.status).toBe(302)
    const consent = res.headers.getSetCookie().find((c) => c.startsWith('__Host-vmcp-consent='))!
    expect(consent).toMatch(
      /^__Host-vmcp-consent=v1\.[^;]+; Max-Age=2592000; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    )
  })
})
