import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { Sealer } from '../storage/index.js'

// Browser binding and remembered consent: the two cookies of the authorization server.
//
// - The transaction cookie binds a sign-in to the browser that started it: its SHA-256 travels
//   with the pending consent and the pending authorization, and every later step (consent POST,
//   each upstream callback) must present the same cookie.
// - The consent cookie remembers, sealed (AES-256-GCM), which (client, redirect URI) pairs this
//   browser approved for which scopes and resource, until when.

/** What a person approves: the parts of an authorization request the consent page shows. */
export interface ConsentSubject {
  clientId: string
  clientName?: string
  redirectUri: string
  /** Space-separated, as granted. */
  scope: string
  resource: string
}

export interface BrowserCookies {
  /** The transaction cookie's value, creating (and setting) one when the browser has none. */
  bind(c: Context): string
  /** SHA-256 (hex) of the browser's transaction cookie; undefined when it sent none. */
  bindingOf(c: Context): string | undefined
  /** Approvals this browser holds (unreadable, tampered or foreign cookies count as none). */
  readConsent(c: Context): ConsentMemory
  /** Adds (or renews) an approval of `subject` and sets the cookie. No-op when rememberFor is 0. */
  rememberConsent(c: Context, memory: ConsentMemory, subject: ConsentSubject): void
}

export interface ConsentMemory {
  /** The browser approved this client with this redirect URI (any scopes): errors may redirect. */
  knowsClient(clientId: string, redirectUri: string): boolean
  /** The browser approved exactly this request (client, redirect URI, scopes, resource, name). */
  covers(subject: ConsentSubject): boolean
  readonly entries: readonly ConsentEntry[]
}

interface ConsentEntry {
  /** Hash of (client id, redirect URI). */
  k: string
  /** Hash of what was approved for it (scopes, resource, client name). */
  g: string
  /** Expiry, epoch seconds. */
  e: number
}

interface ConsentCookie {
  typ: typeof CONSENT_TYP
  a: ConsentEntry[]
}

export interface BrowserCookiesOptions {
  issuer: string
  sealer: Sealer
  /** How long an approval is remembered (ms); 0 disables remembering. */
  rememberForMs: number
  now?: () => number
}

const CONSENT_TYP = 'vmcp-consent-v1'
// A browser remembers this many clients; the oldest approval is dropped first. Keeps the sealed
// cookie far below the 4096-byte limit browsers enforce (RFC 6265 §6.1).
const MAX_REMEMBERED = 20
const BINDING = /^[A-Za-z0-9_-]{43}$/

/** SHA-256 (hex) of a transaction cookie value: what is stored, never the cookie itself. */
export function bindingHash(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex')
}

/** Constant-time comparison of two hex digests (false when either is missing). */
export function sameDigest(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false
  return timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

const shortHash = (parts: unknown[]) =>
  createHash('sha256').update(JSON.stringify(parts), 'utf8').digest('base64url').slice(0, 22)

/**
 * The cookie names for `issuer`. RFC 6265bis §4.1.3.2: a `__Host-` cookie must be Secure with
 * Path=/ and no Domain, so no subdomain can plant or overwrite it; that needs https, so a
 * loopback http issuer uses plain names.
 */
export function cookieNames(issuer: string): {
  transaction: string
  consent: string
  secure: boolean
} {
  const secure = new URL(issuer).protocol === 'https:'
  const prefix = secure ? '__Host-' : ''
  return { transaction: `${prefix}vmcp-tx`, consent: `${prefix}vmcp-consent`, secure }
}

export function createBrowserCookies(options: BrowserCookiesOptions): BrowserCookies {
  const { issuer, sealer, rememberForMs } = options
  const now = options.now ?? Date.now
  const names = cookieNames(issuer)
  // AAD: a value sealed for anything else (a stored record, another issuer) never opens as this.
  const aad = `consent-cookie:${issuer}`
  const base = { path: '/', secure: names.secure, httpOnly: true, sameSite: 'Lax' } as const

  const subjectKey = (clientId: string, redirectUri: string) =>
    shortHash([issuer, clientId, redirectUri])
  const grantKey = (s: ConsentSubject) =>
    shortHash([s.scope.split(' ').filter(Boolean).sort(), s.resource, s.clientName ?? null])

  function memoryOf(entries: ConsentEntry[]): ConsentMemory {
    const nowS = Math.floor(now() / 1000)
    const live = entries.filter((e) => e.e > nowS)
    return {
      entries: live,
      knowsClient: (clientId, redirectUri) =>
        live.some((e) => e.k === subjectKey(clientId, redirectUri)),
      covers: (s) =>
        live.some((e) => e.k === subjectKey(s.clientId, s.redirectUri) && e.g === grantKey(s)),
    }
  }

  return {
    bind(c) {
      const existing = getCookie(c, names.transaction)
      // One binding per browser, reused: two sign-ins running side by side in one browser must
      // not log each other out.
      if (existing !== undefined && BINDING.test(existing)) return existing
      const value = randomBytes(32).toString('base64url')
      // Session cookie; SameSite=Lax still rides along on the top-level GET back from the IdP.
      setCookie(c, names.transaction, value, base)
      return value
    },

    bindingOf(c) {
      const value = getCookie(c, names.transaction)
      return value === undefined || !BINDING.test(value) ? undefined : bindingHash(value)
    },

    readConsent(c) {
      const raw = getCookie(c, names.consent)
      if (raw === undefined || raw.length > 4096) return memoryOf([])
      try {
        const parsed = JSON.parse(sealer.open(raw, aad)) as Partial<ConsentCookie>
        // The sealer's key seals other records too: only our own type counts as an approval.
        if (parsed.typ !== CONSENT_TYP || !Array.isArray(parsed.a)) return memoryOf([])
        const entries = parsed.a.filter(
          (e): e is ConsentEntry =>
            typeof e?.k === 'string' && typeof e.g === 'string' && typeof e.e === 'number',
        )
        return memoryOf(entries)
      } catch {
        return memoryOf([])
      }
    },

    rememberConsent(c, memory, subject) {
      if (rememberForMs <= 0) return
      const k = subjectKey(subject.clientId, subject.redirectUri)
      const entry: ConsentEntry = {
        k,
        g: grantKey(subject),
        e: Math.floor((now() + rememberForMs) / 1000),
      }
      // Newest first; a new approval replaces the old one of the same client and redirect URI.
      const entries = [entry, ...memory.entries.filter((e) => e.k !== k)].slice(0, MAX_REMEMBERED)
      const value = sealer.seal(
        JSON.stringify({ typ: CONSENT_TYP, a: entries } satisfies ConsentCookie),
        aad,
      )
      setCookie(c, names.consent, value, { ...base, maxAge: Math.ceil(rememberForMs / 1000) })
    },
  }
}
