import { describe, expect, it } from 'vitest'
import { OAuthError } from '../../../../src/authserver/oauth-error.js'
import { rateLimitKey } from '../../../../src/authserver/rate-limit.js'
import { hashId } from '../../../../src/storage/index.js'
import { createHarness, REDIRECT_URI } from './helpers.js'

const pass = () => undefined

describe('grants: codes and refresh-token families', () => {
  it('codes are 256-bit base64url, stored only under their SHA-256, single use', async () => {
    const h = await createHarness()
    const { client } = await h.register()
    const { code } = await h.issueCode(client)
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(await h.store.get('authcode', code)).toBeUndefined()
    expect(await h.store.get('authcode', hashId(code))).toBeDefined()
    expect((await h.grants.redeemCode(code, pass)).status).toBe('ok')
    expect((await h.grants.redeemCode(code, pass)).status).toBe('replayed')
    expect((await h.grants.redeemCode('unknown', pass)).status).toBe('invalid')
  })

  it('OAuth 2.1 §4.1.3: of two concurrent redemptions exactly one succeeds', async () => {
    const h = await createHarness()
    const { client } = await h.register()
    const { code } = await h.issueCode(client)
    const results = await Promise.all([h.grants.redeemCode(code, pass), h.grants.redeemCode(code, pass)])
    expect(results.map((r) => r.status).sort()).toEqual(['ok', 'replayed'])
  })

  it('a redemption refused by its check leaves the code; after use, a refused one is no replay', async () => {
    const h = await createHarness()
    const { client } = await h.register()
    const { code } = await h.issueCode(client)
    const refuse = () => new OAuthError('invalid_grant', 'no')
    expect((await h.grants.redeemCode(code, refuse)).status).toBe('rejected')
    expect((await h.grants.redeemCode(code, pass)).status).toBe('ok')
    expect((await h.grants.redeemCode(code, refuse)).status).toBe('rejected')
    expect(h.revoked).toEqual([])
    expect((await h.grants.redeemCode(code, pass)).status).toBe('replayed')
    expect(h.revoked).toHaveLength(1)
  })

  it('RFC 9700 §4.14.2: two concurrent refreshes with one token are reuse: the family is revoked', async () => {
    const h = await createHarness()
    const { client } = await h.register()
    const family = {
      grantId: 'g1',
      endsAt: h.clock.now + 86_400_000,
      clientId: client.clientId,
      scope: 'openid',
      resource: 'https://vmcp.example/mcp',
      subject: 'user-1',
      tsid: 'tsid-1',
    }
    const token = (await h.grants.issueRefreshToken(family))!
    const results = await Promise.all([
      h.grants.rotateRefreshToken(token, () => undefined),
      h.grants.rotateRefreshToken(token, () => undefined),
    ])
    expect(results.map((r) => r.status)).toContain('reused')
    expect(h.revoked).toEqual(['tsid-1'])
    // Whichever request took the token first, nothing it got survives the revocation.
    for (const r of results) {
      if (r.status === 'ok')
        expect((await h.grants.rotateRefreshToken(r.refreshToken, () => undefined)).status).toBe(
          'invalid',
        )
    }
  })

  it('a refresh token issued after its grant was revoked is withdrawn at once', async () => {
    const h = await createHarness()
    const family = {
      grantId: 'g2',
      endsAt: h.clock.now + 86_400_000,
      clientId: 'c',
      scope: '',
      resource: 'https://vmcp.example/mcp',
      subject: 's',
      tsid: 't',
    }
    await h.grants.revokeGrant('g2', 't', 'test')
    expect(await h.grants.issueRefreshToken(family)).toBeUndefined()
  })

  it('onRevoke failures are logged, and revocation still holds', async () => {
    const h = await createHarness()
    const { client } = await h.register({ redirect_uris: [REDIRECT_URI] })
    const { code } = await h.issueCode(client)
    const redeemed = await h.grants.redeemCode(code, pass)
    if (redeemed.status !== 'ok') throw new Error('not redeemed')
    const token = (await h.grants.issueRefreshToken({
      grantId: redeemed.grantId,
      endsAt: h.clock.now + 86_400_000,
      clientId: client.clientId,
      scope: '',
      resource: redeemed.grant.resource,
      subject: 's',
      tsid: redeemed.grant.tsid,
    }))!
    h.revoked.push = () => {
      throw new Error('upstream store down')
    }
    expect((await h.grants.redeemCode(code, pass)).status).toBe('replayed')
    expect((await h.grants.rotateRefreshToken(token, () => undefined)).status).toBe('invalid')
    expect(h.sink.records().some((r) => r.msg === 'upstream token revocation failed')).toBe(true)
  })
})

describe('rate-limit keys', () => {
  it('IPv4 as is, IPv4-mapped unwrapped, IPv6 by its /64', () => {
    expect(rateLimitKey('203.0.113.7')).toBe('203.0.113.7')
    expect(rateLimitKey('::ffff:203.0.113.7')).toBe('203.0.113.7')
    expect(rateLimitKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(rateLimitKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(rateLimitKey('unknown')).toBe('unknown')
  })
})
