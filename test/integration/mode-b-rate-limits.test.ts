// Rate limits and bounds of the Mode B authorization server, attacked over real HTTP: the client
// address behind trusted proxies (X-Forwarded-For), authorize and callback floods, and the cap on
// sign-ins in progress. vmcp trusts 127.0.0.1 and 10/8 as proxies; requests from 127.0.0.2 come
// from a peer it does not trust.
import { createHash, randomBytes } from 'node:crypto'
import { Agent, fetch as undiciFetch } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { CLIENT_REDIRECT } from '../support/oauth-client.js'

const untrustedPeer = new Agent({ localAddress: '127.0.0.2' })

/**
 * Sends until the limiter answers 429, at most 2 × limit + 1 times. The limiter is a sliding
 * one-minute window, so a run that crosses a window boundary still gets exactly `limit` requests
 * through before the first 429 (a fixed window would let up to 2 × limit through there). Each
 * test uses its own client address. Without the limit, or with a key that follows the spoofed
 * header, no 429 ever comes and the assertion fails.
 */
async function untilLimited(limit: number, send: (i: number) => Promise<Response | number>) {
  const statuses: number[] = []
  let last: Response | undefined
  for (let i = 0; i < 2 * limit + 1; i++) {
    const r = await send(i)
    const status = typeof r === 'number' ? r : r.status
    if (typeof r !== 'number') last = r
    statuses.push(status)
    if (status === 429) break
  }
  const passed = statuses.length - 1
  expect(statuses.at(-1), JSON.stringify(statuses)).toBe(429)
  expect(passed, JSON.stringify(statuses)).toBe(limit)
  return { statuses, last }
}

describe('Mode B rate limits behind trusted proxies', () => {
  let stack: ModeBStack
  let issuer: string
  beforeAll(async () => {
    stack = await startModeBStack({
      server: { trustedProxies: ['127.0.0.1/32', '10.0.0.0/8'] },
      runConfig: {
        rateLimits: { register: 3, authorize: 6, callback: 3 },
        pendingAuthorizations: { maxPerAddress: 2, maxTotal: 5 },
      },
    })
    issuer = stack.issuer
  })
  afterAll(async () => {
    await stack?.close()
    await untrustedPeer.close()
  })

  const register = async (xff: string, via?: Agent) => {
    const init = {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': xff },
      body: JSON.stringify({ redirect_uris: [CLIENT_REDIRECT] }),
    }
    const res = via
      ? await undiciFetch(`${issuer}/oauth/register`, { ...init, dispatcher: via })
      : await fetch(`${issuer}/oauth/register`, init)
    const body = (await res.json()) as { client_id?: string; error?: string }
    return { status: res.status, body, retryAfter: res.headers.get('retry-after') }
  }

  it('X-Forwarded-For from an untrusted peer does not change the rate-limit key', async () => {
    // A fresh forwarded address every time: only the peer can be the key.
    const { statuses } = await untilLimited(3, async (i) => (await register(`198.51.100.${11 + i}`, untrustedPeer)).status)
    expect(statuses.slice(0, -1).every((s) => s === 201)).toBe(true)
  })

  it('X-Forwarded-For through a trusted proxy is the key: one address is limited, another is not', async () => {
    const { statuses } = await untilLimited(3, async () => (await register('198.51.100.1')).status)
    expect(statuses.slice(0, -1).every((s) => s === 201)).toBe(true)
    expect((await register('198.51.100.2')).status).toBe(201)
  })

  it('spoofed leftmost X-Forwarded-For entries beyond the trusted hops are ignored', async () => {
    const spoofs = ['1.1.1.1', '10.0.0.1', 'garbage', '203.0.113.9, 127.0.0.1', '192.0.2.1', '192.0.2.2', '192.0.2.3']
    const { statuses } = await untilLimited(3, async (i) => (await register(`${spoofs[i]}, 198.51.100.3, 10.0.0.2`)).status)
    expect(statuses.slice(0, -1).every((s) => s === 201)).toBe(true)
  })

  it('an /oauth/authorize flood gets 429 with Retry-After, per client address', async () => {
    const hit = (xff: string) =>
      fetch(`${issuer}/oauth/authorize`, { redirect: 'manual', headers: { 'x-forwarded-for': xff } })
    const { statuses, last } = await untilLimited(6, () => hit('198.51.100.4'))
    expect(statuses.slice(0, -1).every((s) => s === 400)).toBe(true)
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    // Sliding window: at most the rest of this window plus the next one.
    expect(Number(last?.headers.get('retry-after'))).toBeLessThanOrEqual(120)
    expect(await last?.json()).toMatchObject({ error: 'too_many_requests' })
    expect((await hit('198.51.100.5')).status).toBe(400)
  })

  it('an /oauth/callback flood gets 429 with Retry-After', async () => {
    const { statuses, last } = await untilLimited(3, (i) =>
      fetch(`${issuer}/oauth/callback?state=x${i}`, { headers: { 'x-forwarded-for': '198.51.100.6' } }),
    )
    expect(statuses.slice(0, -1).every((s) => s === 400)).toBe(true)
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  })

  it('sign-ins in progress are capped per client address (429) and in total (503)', async () => {
    const { body } = await register('198.51.100.20')
    const clientId = body.client_id ?? ''
    const authorize = async (xff: string) => {
      const url = new URL(`${issuer}/oauth/authorize`)
      const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url')
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: CLIENT_REDIRECT,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: randomBytes(8).toString('hex'),
      }).toString()
      const res = await fetch(url, { redirect: 'manual', headers: { 'x-forwarded-for': xff } })
      const location = res.headers.get('location') ?? ''
      const text = await res.text()
      return { status: res.status, location, text, retryAfter: res.headers.get('retry-after') }
    }
    // Admitted: the sign-in is stored and waits on vmcp's consent page (a DCR client).
    const admitted = (r: { status: number; text: string }) => {
      expect(r.status, r.text.slice(0, 300)).toBe(200)
      expect(r.text).toContain('name="decision" value="approve"')
    }
    // maxPerAddress 2: the third sign-in from one address is refused, shown, not redirected.
    const a = [await authorize('198.51.100.21'), await authorize('198.51.100.21')]
    for (const r of a) admitted(r)
    const third = await authorize('198.51.100.21')
    expect(third.status).toBe(429)
    expect(third.location).toBe('')
    expect(JSON.parse(third.text)).toMatchObject({ error: 'too_many_requests' })
    expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1)
    // maxTotal 5: two more addresses bring the total to 5; the sixth is refused for everyone.
    for (const xff of ['198.51.100.22', '198.51.100.22', '198.51.100.23']) {
      const r = await authorize(xff)
      admitted(r)
    }
    const over = await authorize('198.51.100.23')
    expect(over.status).toBe(503)
    expect(JSON.parse(over.text)).toMatchObject({ error: 'temporarily_unavailable' })
    expect(Number(over.retryAfter)).toBeGreaterThanOrEqual(1)
  })
})
