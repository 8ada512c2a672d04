import { describe, expect, it } from 'vitest'
import {
  ANONYMOUS_IDENTITY,
  createAnonymousAuthenticator,
} from '../../../src/auth/incoming/index.js'

describe('createAnonymousAuthenticator', () => {
  it('gives every request the anonymous identity, even one carrying a token', async () => {
    const auth = createAnonymousAuthenticator()
    expect(auth.type).toBe('anonymous')
    const plain = await auth.authenticate(new Request('http://127.0.0.1/mcp'))
    const withToken = await auth.authenticate(
      new Request('http://127.0.0.1/mcp', { headers: { authorization: 'Bearer x' } }),
    )
    expect(plain).toEqual({ ok: true, identity: ANONYMOUS_IDENTITY })
    expect(withToken).toEqual({ ok: true, identity: ANONYMOUS_IDENTITY })
  })

  it('has no protected-resource metadata', () => {
    expect(createAnonymousAuthenticator().protectedResourceMetadata()).toBeUndefined()
  })
})
