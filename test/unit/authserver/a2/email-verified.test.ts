import { afterEach, describe, expect, it } from 'vitest'
import { followRedirectsWithCookies } from '../../../support/http.js'
import type { IdpOptions } from '../../../support/idp.js'
import { CLIENT_REDIRECT, startChain, type Chain } from './harness.js'

// Issue 6 item 8: vmcp's `email` claim only for an address the upstream says it verified, whether
// the address comes in the ID token or from UserInfo (OIDC Core §5.1 email_verified).
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
    { maxRedirects: 30 },
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
