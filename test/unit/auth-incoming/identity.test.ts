import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ANONYMOUS_IDENTITY, identityKey, type Identity } from '../../../src/auth/incoming/index.js'
import { Secret } from '../../../src/log/index.js'

describe('Identity', () => {
  const identity: Identity = {
    subject: 'alice',
    issuer: 'https://idp.example',
    claims: { sub: 'alice', scope: 'mcp' },
    token: new Secret('eyJ.secret-token.sig'),
    upstreamTokens: { github: new Secret('gho_upstream') },
  }

  it('serializes and inspects without its tokens', () => {
    for (const text of [JSON.stringify(identity), inspect(identity, { depth: 5 }), String(identity.token)]) {
      expect(text).not.toContain('secret-token')
      expect(text).not.toContain('gho_upstream')
    }
    expect(JSON.parse(JSON.stringify(identity))).toMatchObject({ subject: 'alice', token: '[REDACTED]', upstreamTokens: { github: '[REDACTED]' } })
    expect(identity.token?.reveal()).toBe('eyJ.secret-token.sig')
  })

  it('binds sessions by issuer and subject', () => {
    expect(identityKey(identity)).not.toBe(identityKey({ ...identity, issuer: 'https://other.example' }))
    expect(identityKey(identity)).toBe(identityKey({ ...identity, token: new Secret('another') }))
    expect(identityKey(ANONYMOUS_IDENTITY)).not.toBe(identityKey(identity))
  })
})
