import { afterEach, describe, expect, it } from 'vitest'
import { followRedirectsWithCookies } from '../../../support/http.js'
import type { IdpOptions } from '../../../support/idp.js'
import { CLIENT_REDIRECT, startChain, type Chain } from './harness.js'

// Issue 6 item 8: vmcp's `email` claim only for an address the upstream says it verified, whether
// the address comes in the ID token or from UserInfo (OIDC Core §5.1 email_verified); and the
// client's nonce carried from /oauth/authorize to the code grant, for vmcp's ID token.
let chain: Chain | undefined

afterEach(async () => {
  await chain?.close()
  chain = undefined
})

async function grantWith(idp1: IdpOptions) {
  chain = await startChain({ idp1 })
  const final = await followRedirectsWithCookies(
    chain.authorizeUrl({ scope: 'openid profile email' }),
    CLIENT_REDIRECT,
    { maxRedirects: 30, consent: 'approve' },
  )
  expect(final.searchParams.get('code')).toBeTruthy()
  return chain.grants.at(-1)
}

describe('email only with email_verified: true', () => {
  it('UserInfo says email_verified: false → no email (the name still comes)', async () => {
    const grant = await grantWith({ emailVerified: false })
    expect(grant).toMatchObject({ subject: 'alice', name: 'alice' })
    expect(grant).not.toHaveProperty('email')
  })

  it('the ID token says email_verified: false → no email', async () => {
    const grant = await grantWith({ emailVerified: false, scopeClaimsInIdToken: true })
    expect(grant).toMatchObject({ subject: 'alice', name: 'alice' })
    expect(grant).not.toHaveProperty('email')
  })

  it('the ID token says email_verified: true → email', async () => {
    const grant = await grantWith({ scopeClaimsInIdToken: true })
    expect(grant).toMatchObject({ subject: 'alice', email: 'alice@example.test' })
  })
})

describe('the client’s OIDC nonce travels from /oauth/authorize into the code grant', () => {
  it('kept through both upstream legs; absent when the client sent none', async () => {
    chain = await startChain()
    // One browser: it approves the client once, so the error below may go back to the client.
    const jar = new Map<string, string>()
    const run = (params: Record<string, string>) =>
      followRedirectsWithCookies(chain!.authorizeUrl(params), CLIENT_REDIRECT, {
        maxRedirects: 30,
        consent: 'approve',
        jar,
      })
    await run({ nonce: 'client-nonce-123' })
    expect(chain.grants.at(-1)).toMatchObject({ nonce: 'client-nonce-123' })
    await run({})
    expect(chain.grants.at(-1)).not.toHaveProperty('nonce')
    // Bounded, since it is stored: too long a nonce goes back to the client as invalid_request.
    const long = await run({ nonce: 'n'.repeat(513) })
    expect(long.searchParams.get('error')).toBe('invalid_request')
  })
})
