import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cookieHeader,
  followRedirectsWithCookies,
  parseConsentForm,
  submitConsent,
  type ConsentForm,
  type CookieJar,
} from '../../../support/http.js'
import { captureLogger, CLIENT_REDIRECT, startChain, type Chain } from './harness.js'

let chain: Chain
const { logger, lines } = captureLogger()
const log = () => lines.join('')

beforeAll(async () => {
  chain = await startChain({ logger })
})

afterAll(async () => {
  await chain?.close()
})

describe('log canary (trace level)', () => {
  it('no code, verifier, state, nonce, client secret, token, cookie, consent id or CSRF token reaches the log', async () => {
    // Full chain, twice (one to refresh, one to break), each in its own browser.
    const jars: CookieJar[] = [new Map(), new Map()]
    const consentForms: ConsentForm[] = []
    for (const jar of jars) {
      await followRedirectsWithCookies(chain.authorizeUrl(), CLIENT_REDIRECT, {
        maxRedirects: 30,
        consent: 'approve',
        jar,
        consentForms,
      })
    }
    const [first, second] = chain.grants
    expect(second).toBeDefined()

    // Upstream refresh (both upstreams), then a refresh the upstream refuses.
    await chain.expire(first!.tsid, 'corp')
    await chain.expire(first!.tsid, 'second')
    const refreshed = await chain.tokenStore.tokensFor(first!.tsid)
    for (const t of Object.values(refreshed)) chain.secrets.add(t.reveal())
    const dead = await chain.peek(second!.tsid, 'second')
    await chain.idp2.revoke(dead!.refreshToken as string, chain.client2)
    await chain.expire(second!.tsid, 'second')
    await expect(chain.tokenStore.tokensFor(second!.tsid)).rejects.toThrow('upstream second')

    // A replayed callback, an upstream refusal, a rejected authorization request.
    await fetch(chain.callbacks[0]!, { redirect: 'manual' })
    const jar: CookieJar = new Map()
    const idp2Auth = await followRedirectsWithCookies(chain.authorizeUrl(), chain.idp2.metadata.authorization_endpoint, {
      maxRedirects: 30,
      jar,
      consent: 'approve',
      consentForms,
    })
    const denied = new URL(`${chain.issuer}/oauth/callback`)
    denied.searchParams.set('error', 'access_denied')
    denied.searchParams.set('state', idp2Auth.searchParams.get('state')!)
    denied.searchParams.set('iss', chain.idp2.issuer)
    await fetch(denied, { redirect: 'manual', headers: { cookie: cookieHeader(jar) } })
    await fetch(chain.authorizeUrl({ code_challenge_method: 'plain' }), { redirect: 'manual' })
    jars.push(jar)

    // Refused steps: a callback from another browser, a forged and a denied consent.
    const other: CookieJar = new Map()
    const toIdp = await followRedirectsWithCookies(chain.authorizeUrl(), chain.idp1.metadata.authorization_endpoint, {
      jar: other,
      consent: 'approve',
      consentForms,
    })
    jars.push(other)
    const callback = await followRedirectsWithCookies(toIdp, `${chain.issuer}/oauth/callback`)
    expect((await fetch(callback, { redirect: 'manual' })).status).toBe(400)
    // Remembered for these scopes, so ask for fewer to see the page again.
    const page = await fetch(chain.authorizeUrl({ scope: 'openid' }), { headers: { cookie: cookieHeader(other) } })
    const form = parseConsentForm(await page.text())!
    consentForms.push(form)
    expect((await submitConsent(chain.authorizeUrl(), form, 'approve', other, { csrf: 'forged' })).status).toBe(403)
    expect((await submitConsent(chain.authorizeUrl(), form, 'deny', other)).status).toBe(302)
    expect(log()).toContain('consent denied')
    expect(log()).toContain('upstream callback from another browser; refused')
    expect(log()).toContain('consent POST with a wrong CSRF token; refused')
    const cookies = jars.flatMap((j) => [...j].filter(([k]) => k.startsWith('vmcp-')).map(([, v]) => v))
    expect(cookies.length).toBeGreaterThanOrEqual(6)
    const formSecrets = consentForms.flatMap((f) => [f.fields.consent!, f.fields.csrf!])
    expect(formSecrets.length).toBe(10)

    const text = log()
    expect(text).toContain('upstream chain complete; code issued')
    expect(text).toContain('upstream token refresh failed')
    expect(text).toContain('upstream chain failed')
    expect(text).toContain('"level":10') // trace was on

    const secrets = [...chain.secrets, ...chain.grants.map((g) => g.tsid), ...cookies, ...formSecrets]
    // Codes (ours and upstream), verifiers, states, nonces, ATs, RTs, ID tokens, client secrets.
    expect(secrets.length).toBeGreaterThan(30)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThanOrEqual(16)
      expect(text, `secret ${secret.slice(0, 6)}… leaked`).not.toContain(secret)
    }
  })
})
