import { createHash } from 'node:crypto'
import type { Context } from 'hono'

// The only pages vmcp shows a person: the consent page and sign-in errors. Server-rendered, no
// script, every interpolated value escaped, and headers that keep them out of frames and caches.

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--line:#d0d7de;--accent:#0a58ca;--warn:#fff8c5;--warn-line:#d4a72c}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--line:#30363d;--accent:#1f6feb;--warn:#2b2111;--warn-line:#9e6a03}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:34rem;margin:2rem auto;padding:1.5rem 1.75rem;background:var(--card);border:1px solid var(--line);border-radius:12px}
h1{font-size:1.35rem;line-height:1.3;margin:0 0 .75rem}
p{margin:.5rem 0}
.muted{color:var(--muted);font-size:.9rem}
dl{margin:1.25rem 0;display:grid;grid-template-columns:max-content 1fr;gap:.6rem 1rem}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
dd ul,dd ol{margin:0;padding-left:1.1rem}
code{font:.85rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:0 .25rem}
.warning{background:var(--warn);border:1px solid var(--warn-line);border-radius:8px;padding:.6rem .8rem}
.actions{display:flex;gap:.75rem;margin-top:1.25rem;flex-wrap:wrap}
button{font:inherit;font-weight:600;padding:.55rem 1.4rem;border-radius:8px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
@media (max-width:30rem){main{margin:0;border-radius:0;border-width:0 0 1px}dl{grid-template-columns:1fr;gap:.15rem}dd{margin-bottom:.5rem}}
`.trim()

// CSP 3 §8.3: an inline <style> is allowed by its hash, so no 'unsafe-inline' is needed.
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64')
// Built outside any template so a formatter cannot add whitespace the hash does not cover.
const STYLE_TAG = { html: `<style>${STYLE}</style>` }

/**
 * Headers of every page: no script, no frames (clickjacking, RFC 9700 §4.16), nothing cached or
 * leaked through Referer to other origins (the page URL carries the authorization request). `form-action` is left
 * out on purpose: browsers apply it to the redirects after the consent POST (to the upstream
 * identity provider or the client's redirect URI), which are not known ahead of time.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; frame-ancestors 'none'`,
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on the form POST.
  'referrer-policy': 'same-origin',
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

/** HTML-escapes text for element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch)
}

/** Marks a string as already-escaped HTML. */
interface Html {
  readonly html: string
}

/** Tagged template: interpolated strings are escaped, Html values and arrays of them are not. */
export function html(strings: TemplateStringsArray, ...values: (string | Html | Html[])[]): Html {
  let out = strings[0] ?? ''
  values.forEach((v, i) => {
    const part = Array.isArray(v)
      ? v.map((h) => h.html).join('')
      : typeof v === 'string'
        ? escapeHtml(v)
        : v.html
    out += part + (strings[i + 1] ?? '')
  })
  return { html: out }
}

function document(title: string, body: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>${title}</title>
        ${STYLE_TAG}
      </head>
      <body>
        <main>${body}</main>
      </body>
    </html> `.html
}

type PageStatus = 200 | 400 | 403 | 503

/** A page response with PAGE_HEADERS, keeping cookies the handler already set on `c`. */
export function pageResponse(c: Context, status: PageStatus, title: string, body: Html): Response {
  return c.body(document(title, body), status, { ...PAGE_HEADERS })
}

/** A sign-in error for a person: what happened, what to do, and the OAuth error code. */
export function errorPage(
  c: Context,
  status: PageStatus,
  heading: string,
  message: string,
  error?: string,
): Response {
  return pageResponse(
    c,
    status,
    heading,
    html`<h1>${heading}</h1>
      <p>${message}</p>
      ${error ? html`<p class="muted">Error code: <code>${error}</code></p>` : html``}`,
  )
}

export interface ConsentPageModel {
  /** vmcp's own host, named in the heading. */
  serviceHost: string
  clientName: string | undefined
  clientId: string
  /** CIMD: the host that publishes the client's metadata document. */
  cimdHost: string | undefined
  redirectUri: string
  scopes: string[]
  resource: string
  upstreams: { name: string; host: string }[]
  action: string
  consentId: string
  csrf: string
}

const SCOPE_TEXT: Record<string, string> = {
  openid: 'confirm who you are',
  profile: 'see your name',
  email: 'see your email address',
  offline_access: 'stay signed in after you close this window',
}

/** Where the browser is sent back to: a host, or "an app on this device" for other schemes. */
function describeRedirect(redirectUri: string): Html {
  const url = new URL(redirectUri)
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const local = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname)
    const host = html`<code>${url.host}</code>`
    return local ? html`${host} (an application on this computer)` : host
  }
  return html`an application on this device (<code>${url.protocol}</code>)`
}

/** The consent page (MCP security best practices, "Confused Deputy Problem"). */
export function consentPage(c: Context, m: ConsentPageModel): Response {
  const name = m.clientName?.trim() ? m.clientName.trim() : 'An unnamed application'
  // Registration allows 200 characters; the heading keeps to a readable length, the list has all.
  const short = name.length > 60 ? `${name.slice(0, 57)}...` : name
  const clientId = m.cimdHost
    ? html`<code>${m.cimdHost}</code>
        <span class="muted">(metadata published at <code>${m.clientId}</code>)</span>`
    : html`<code>${m.clientId}</code>`
  const scopes = m.scopes.length
    ? html`<ul>
        ${m.scopes.map((s) => html`<li><code>${s}</code>${SCOPE_TEXT[s] ? html` — ${SCOPE_TEXT[s]}` : html``}</li>`)}
      </ul>`
    : html`none`
  const upstreams = html`<ol>
    ${m.upstreams.map((u) => html`<li>${u.name} (<code>${u.host}</code>)</li>`)}
  </ol>`
  return pageResponse(
    c,
    200,
    `Allow ${short}?`,
    html`<h1>Allow <q>${short}</q> to use ${m.serviceHost} as you?</h1>
      <p>
        An application asks to sign you in. If you allow it, it can call the services behind
        <code>${m.resource}</code> with your identity.
      </p>
      <dl>
        <dt>Application</dt>
        <dd>${name} <span class="muted">(the name is chosen by the application)</span></dd>
        <dt>Client ID</dt>
        <dd>${clientId}</dd>
        <dt>Returns to</dt>
        <dd>${describeRedirect(m.redirectUri)}</dd>
        <dt>Permissions</dt>
        <dd>${scopes}</dd>
        <dt>Resource</dt>
        <dd><code>${m.resource}</code></dd>
        <dt>Signs you in at</dt>
        <dd>${upstreams}</dd>
      </dl>
      <p class="warning">
        Only allow this if you started this sign-in yourself, from an application you trust. If you
        did not, choose Deny.
      </p>
      <form method="post" action="${m.action}">
        <input type="hidden" name="consent" value="${m.consentId}" />
        <input type="hidden" name="csrf" value="${m.csrf}" />
        <div class="actions">
          <button class="primary" type="submit" name="decision" value="approve">Allow</button>
          <button type="submit" name="decision" value="deny">Deny</button>
        </div>
      </form>`,
  )
}
