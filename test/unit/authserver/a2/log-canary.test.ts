import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { followRedirectsWithCookies } from '../../../support/http.js'
import { captureLogger, CLIENT_REDIRECT, startChain, type Chain } from './harness.js'

let chain: Chain
const { logger, lines } = captureLogger()

beforeAll(async () => {
  chain = await startChain({ logger })
})

afterAll(async () => {
  await chain?.close()
})

describe('log canary (trace level)', () => {
  it('no code, verifier, state, nonce, client secret or token reaches the log', async () => {
    // Full chain, twice (one to refresh, one to break).
    await followRedirectsWithCookies(chain.authorizeUrl(), CLIENT_REDIRECT, { maxRedirects: 30 })
    await followRedirectsWithCookies(chain.authorizeUrl(), CLIENT_REDIRECT, { maxRedirects: 30 })
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
    const idp2Auth = await followRedirectsWithCookies(chain.authorizeUrl(), chain.idp2.metadata.authorization_endpoint, {
      maxRedirects: 30,
    })
    const denied = new URL(`${chain.issuer}/oauth/callback`)
    denied.searchParams.set('error', 'access_denied')
    denied.searchParams.set('state', idp2Auth.searchParams.get('state')!)
    denied.searchParams.set('iss', chain.idp2.issuer)
    await fetch(denied, { redirect: 'manual' })
    await fetch(chain.authorizeUrl({ code_challenge_method: 'plain' }), { redirect: 'manual' })

    const log = lines.join('')
    expect(log).toContain('upstream chain complete; code issued')
    expect(log).toContain('upstream token refresh failed')
    expect(log).toContain('upstream chain failed')
    expect(log).toContain('"level":10') // trace was on

    const secrets = [...chain.secrets, ...chain.grants.map((g) => g.tsid)]
    // Codes (ours and upstream), verifiers, states, nonces, ATs, RTs, ID tokens, client secrets.
    expect(secrets.length).toBeGreaterThan(30)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThanOrEqual(16)
      expect(log, `secret ${secret.slice(0, 6)}… leaked`).not.toContain(secret)
    }
  })
})
