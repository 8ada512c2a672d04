import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UpstreamRefreshError } from '../../../../src/authserver/contracts.js'
import { UPSTREAM_TOKENS_KIND } from '../../../../src/authserver/upstream-tokens.js'
import { cookieHeader, followRedirectsWithCookies, type CookieJar } from '../../../support/http.js'
import { CLIENT_ID, CLIENT_REDIRECT, LOOPBACK_CLIENT_ID, startChain, type Chain } from './harness.js'

let chain: Chain

beforeAll(async () => {
  chain = await startChain()
})

afterAll(async () => {
  await chain?.close()
})

/** Runs the whole chain in a fresh browser; returns the final client redirect and its grant. */
async function signIn(params: Record<string, string | undefined> = {}) {
  const before = chain.grants.length
  const final = await followRedirectsWithCookies(chain.authorizeUrl(params), params.redirect_uri ?? CLIENT_REDIRECT, {
    maxRedirects: 30,
    consent: 'approve',
  })
  const grant = chain.grants[before]
  return { final, grant }
}

const refreshes = () => chain.wire.filter((w) => w.grantType === 'refresh_token').length
const refreshesAt = (url: string) =>
  chain.wire.filter((w) => w.grantType === 'refresh_token' && w.url === url).length

describe('upstream chain: /oauth/authorize → corp (oidc) → second (oauth2) → client', () => {
  it('ends at the client redirect with code, state and iss (RFC 9207), and a grant for alice', async () => {
    const { final, grant } = await signIn()
    expect(final.origin + final.pathname).toBe(CLIENT_REDIRECT)
    expect([...final.searchParams.keys()].sort()).toEqual(['code', 'iss', 'state'])
    expect(final.searchParams.get('state')).toBe('client-state-123')
    expect(final.searchParams.get('iss')).toBe(chain.issuer)
    expect(final.searchParams.get('code')).toMatch(/^vmcp-code-/)

    expect(grant).toBeDefined()
    expect(grant).toMatchObject({
      clientId: CLIENT_ID,
      redirectUri: CLIENT_REDIRECT,
      scope: 'openid profile',
      resource: chain.resource,
      subject: 'alice',
      // OIDC Core §5.4: profile claims fetched from UserInfo (the ID token carries only sub).
      name: 'alice',
      email: 'alice@example.test',
    })
    // ≥ 128 bits of randomness, base64url.
    expect(grant!.tsid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // One code exchange per upstream, each at its own token endpoint.
    const codeGrants = chain.wire.filter((w) => w.grantType === 'authorization_code').map((w) => w.url)
    expect(codeGrants.slice(-2)).toEqual([chain.idp1.metadata.token_endpoint, chain.idp2.metadata.token_endpoint])
  })

  it('stores both upstreams\' tokens sealed (no token in the raw store value) and returns them', async () => {
    const { grant } = await signIn()
    const { tsid } = grant!
    const tokens = await chain.tokenStore.tokensFor(tsid)
    expect(Object.keys(tokens).sort()).toEqual(['corp', 'second'])
    const corp = tokens.corp!.reveal()
    const second = tokens.second!.reveal()
    expect(String(tokens.corp)).toBe('[REDACTED]')

    // Each token is the one its own upstream issued, for alice's session there.
    expect(await chain.idp1.introspect(corp)).toMatchObject({ active: true, sub: 'alice' })
    expect(await chain.idp2.introspect(second)).toMatchObject({ active: true, sub: 'alice-at-idp2' })

    const raw = await chain.store.dump(UPSTREAM_TOKENS_KIND)
    const rowsOfSession = chain.store.ids(UPSTREAM_TOKENS_KIND).filter((id) => id.startsWith(`${tsid}:`))
    expect(rowsOfSession.sort()).toEqual([`${tsid}:corp`, `${tsid}:second`])
    const stored = await chain.peek(tsid, 'corp')
    expect(stored).toMatchObject({ tsid, upstream: 'corp', accessToken: corp, subject: 'alice' })
    for (const secret of [corp, second, stored!.refreshToken as string, stored!.idToken as string]) {
      expect(secret.length).toBeGreaterThan(10)
      expect(raw).not.toContain(secret)
    }
  })

  it('refreshes an expired upstream access token and stores the rotated refresh token', async () => {
    const { grant } = await signIn()
    const { tsid } = grant!
    const before = await chain.peek(tsid, 'corp')
    const beforeSecond = await chain.peek(tsid, 'second')
    const count = refreshes()
    await chain.expire(tsid, 'corp')
    await chain.expire(tsid, 'second')
    const tokens = await chain.tokenStore.tokensFor(tsid)
    expect(refreshes()).toBe(count + 2)
    const after = await chain.peek(tsid, 'corp')
    expect(tokens.corp!.reveal()).toBe(after!.accessToken)
    expect(after!.accessToken).not.toBe(before!.accessToken)
    // oidc-provider rotates refresh tokens (rotateRefreshToken: true)
    expect(after!.refreshToken).toBeDefined()
    expect(after!.refreshToken).not.toBe(before!.refreshToken)
    expect(after!.subject).toBe('alice')
    const afterSecond = await chain.peek(tsid, 'second')
    expect(afterSecond!.refreshToken).not.toBe(beforeSecond!.refreshToken)
    expect(await chain.idp1.introspect(tokens.corp!.reveal())).toMatchObject({ active: true })
    expect(await chain.idp2.introspect(tokens.second!.reveal())).toMatchObject({ active: true })
  })

  it('a failing refresh throws UpstreamRefreshError naming the upstream; later calls fail without a request', async () => {
    const { grant } = await signIn()
    const { tsid } = grant!
    const stored = await chain.peek(tsid, 'second')
    // The upstream revokes the refresh token (user signed out there, admin action, ...).
    expect(await chain.idp2.revoke(stored!.refreshToken as string, chain.client2)).toBe(200)
    await chain.expire(tsid, 'corp')
    await chain.expire(tsid, 'second')
    const err = await chain.tokenStore.tokensFor(tsid).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UpstreamRefreshError)
    expect((err as UpstreamRefreshError).upstream).toBe('second')
    expect((err as Error).message).toBe('upstream second token could not be refreshed; sign in again')

    // invalid_grant is permanent: the dead refresh token was dropped, so no second round trip.
    const atIdp2 = refreshesAt(chain.idp2.metadata.token_endpoint)
    const again = await chain.tokenStore.tokensFor(tsid).catch((e: unknown) => e)
    expect(again).toBeInstanceOf(UpstreamRefreshError)
    expect((again as UpstreamRefreshError).upstream).toBe('second')
    expect(refreshesAt(chain.idp2.metadata.token_endpoint)).toBe(atIdp2)
  })

  it('concurrent tokensFor during a refresh make one refresh request per upstream', async () => {
    const { grant } = await signIn()
    const { tsid } = grant!
    const count = refreshes()
    await chain.expire(tsid, 'corp')
    await chain.expire(tsid, 'second')
    const results = await Promise.all(Array.from({ length: 8 }, () => chain.tokenStore.tokensFor(tsid)))
    expect(refreshes()).toBe(count + 2)
    const corp = new Set(results.map((r) => r.corp!.reveal()))
    expect(corp.size).toBe(1)
  })

  it('two replicas sharing the store refresh once (putIfAbsent lock, then re-read)', async () => {
    const { grant } = await signIn()
    const { tsid } = grant!
    const replica = chain.replica()
    const count = refreshes()
    const locks = chain.store.putIfAbsentCalls
    await chain.expire(tsid, 'corp')
    await chain.expire(tsid, 'second')
    const [a, b] = await Promise.all([chain.tokenStore.tokensFor(tsid), replica.tokensFor(tsid)])
    expect(refreshes()).toBe(count + 2)
    expect(a.corp!.reveal()).toBe(b.corp!.reveal())
    expect(a.second!.reveal()).toBe(b.second!.reveal())
    // Both replicas went for the lock of both rows; one of each pair waited and re-read.
    expect(chain.store.putIfAbsentCalls - locks).toBeGreaterThanOrEqual(4)
  })

  it('RFC 8252 §7.3: a loopback redirect URI on another port completes the chain', async () => {
    const redirect = 'http://127.0.0.1:54321/callback'
    const { final, grant } = await signIn({ client_id: LOOPBACK_CLIENT_ID, redirect_uri: redirect })
    expect(final.origin + final.pathname).toBe(redirect)
    expect(final.searchParams.get('code')).toMatch(/^vmcp-code-/)
    // The grant binds the URI the client actually used (OAuth 2.1 §4.1.3 compares it at /token).
    expect(grant!.redirectUri).toBe(redirect)
  })

  it('RFC 6749 §4.1.2.1: upstream error=access_denied → client gets access_denied; the tsid\'s tokens are gone', async () => {
    // Complete leg 1, stop at the second upstream's authorization endpoint.
    const known = new Set(chain.store.ids(UPSTREAM_TOKENS_KIND))
    const jar: CookieJar = new Map()
    const idp2Auth = await followRedirectsWithCookies(chain.authorizeUrl(), chain.idp2.metadata.authorization_endpoint, {
      maxRedirects: 30,
      jar,
      consent: 'approve',
    })
    const state = idp2Auth.searchParams.get('state')!
    const fresh = chain.store.ids(UPSTREAM_TOKENS_KIND).filter((id) => !known.has(id))
    expect(fresh).toHaveLength(1)
    expect(fresh[0]).toMatch(/:corp$/)
    const tsid = fresh[0]!.slice(0, -':corp'.length)
    expect(await chain.store.get(UPSTREAM_TOKENS_KIND, `${tsid}:corp`)).toBeDefined()

    // The user declines at the second upstream.
    const cb = new URL(`${chain.issuer}/oauth/callback`)
    cb.searchParams.set('error', 'access_denied')
    cb.searchParams.set('error_description', 'user declined')
    cb.searchParams.set('state', state)
    cb.searchParams.set('iss', chain.idp2.issuer)
    const res = await fetch(cb, { redirect: 'manual', headers: { cookie: cookieHeader(jar) } })
    expect(res.status).toBe(302)
    const location = new URL(res.headers.get('location')!)
    expect(location.origin + location.pathname).toBe(CLIENT_REDIRECT)
    expect(Object.fromEntries(location.searchParams)).toEqual({
      error: 'access_denied',
      error_description: 'upstream second denied the authorization',
      state: 'client-state-123',
      iss: chain.issuer,
    })
    expect(await chain.store.get(UPSTREAM_TOKENS_KIND, `${tsid}:corp`)).toBeUndefined()
    expect(await chain.tokenStore.tokensFor(tsid)).toEqual({})
  })

  it('a replayed callback state is a 400 (single use), never a redirect', async () => {
    const from = chain.callbacks.length
    await signIn()
    const first = chain.callbacks[from]!
    const res = await fetch(first, { redirect: 'manual' })
    expect(res.status).toBe(400)
    expect(res.headers.get('location')).toBeNull()
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.json()).toEqual({
      error: 'invalid_request',
      error_description: 'authorization request not found or expired',
    })
  })

  it('a callback without state is a 400', async () => {
    const res = await fetch(`${chain.issuer}/oauth/callback?code=abc`, { redirect: 'manual' })
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'missing state parameter' })
  })

  it('RFC 9207 §2.4: a callback whose iss is not the upstream\'s → server_error, tokens revoked', async () => {
    const jar: CookieJar = new Map()
    const idp1Auth = await followRedirectsWithCookies(chain.authorizeUrl(), chain.idp1.metadata.authorization_endpoint, {
      jar,
      consent: 'approve',
    })
    const state = idp1Auth.searchParams.get('state')!
    const cb = new URL(`${chain.issuer}/oauth/callback`)
    cb.searchParams.set('code', 'forged-code')
    cb.searchParams.set('state', state)
    cb.searchParams.set('iss', 'https://attacker.example')
    const res = await fetch(cb, { redirect: 'manual', headers: { cookie: cookieHeader(jar) } })
    expect(res.status).toBe(302)
    const location = new URL(res.headers.get('location')!)
    expect(Object.fromEntries(location.searchParams)).toEqual({
      error: 'server_error',
      error_description: 'sign-in at upstream corp failed',
      state: 'client-state-123',
      iss: chain.issuer,
    })
  })
})

describe('identity continuity across legs', () => {
  let bobChain: Chain

  beforeAll(async () => {
    bobChain = await startChain({ second: 'oidc-same-issuer-bob' })
  })

  afterAll(async () => {
    await bobChain?.close()
  })

  it('the same issuer vouching for another user on a later leg → server_error, no code', async () => {
    const callback = `${bobChain.issuer}/oauth/callback`
    // vmcp's cookies only: each leg at the IdP starts without an IdP session.
    const vmcpJar: CookieJar = new Map()
    const hop = async (url: URL) => {
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader(vmcpJar) } })
      return new URL(res.headers.get('location')!)
    }
    // Leg 1 signs in as alice, leg 2 (fresh IdP session, login_hint=bob) as bob.
    const toIdp = await followRedirectsWithCookies(bobChain.authorizeUrl(), bobChain.idp1.metadata.authorization_endpoint, {
      jar: vmcpJar,
      consent: 'approve',
    })
    const back1 = await followRedirectsWithCookies(toIdp, callback)
    const toIdpAgain = await hop(back1)
    expect(toIdpAgain.searchParams.get('login_hint')).toBe('bob')
    const back2 = await followRedirectsWithCookies(toIdpAgain, callback)
    const final = await hop(back2)
    expect(final.origin + final.pathname).toBe(CLIENT_REDIRECT)
    expect(Object.fromEntries(final.searchParams)).toEqual({
      error: 'server_error',
      error_description: 'the upstream sign-ins are for different users',
      state: 'client-state-123',
      iss: bobChain.issuer,
    })
    expect(bobChain.grants).toHaveLength(0)
    // Leg 1 had stored alice's corp tokens; the failure removed them.
    for (const id of bobChain.store.ids(UPSTREAM_TOKENS_KIND)) {
      expect(await bobChain.store.get(UPSTREAM_TOKENS_KIND, id)).toBeUndefined()
    }
  })
})
