import { describe, expect, it, vi } from 'vitest'
import { ANONYMOUS_IDENTITY, withUpstreamTokens, type IncomingAuthenticator } from '../../../src/auth/incoming/index.js'
import { UpstreamRefreshError, type UpstreamTokenSource } from '../../../src/authserver/index.js'
import { Secret } from '../../../src/log/index.js'
import { StorageUnavailableError } from '../../../src/storage/types.js'
import { memoryLogger } from '../../support/vmcp.js'

const PRM = 'https://vmcp.example.com/.well-known/oauth-protected-resource/mcp'

function verified(claims: Record<string, unknown>): IncomingAuthenticator {
  return {
    type: 'oidc',
    protectedResourceMetadata: () => ({ resource: 'x' }),
    authenticate: async () => ({
      ok: true,
      identity: { ...ANONYMOUS_IDENTITY, subject: 'alice', issuer: 'https://vmcp.example.com', claims },
    }),
  }
}

function source(tokensFor: UpstreamTokenSource['tokensFor']): UpstreamTokenSource {
  return { tokensFor, revoke: async () => undefined, isRevoked: async () => false, onRevoke: () => () => {} }
}

const wrap = (inner: IncomingAuthenticator, src: UpstreamTokenSource) =>
  withUpstreamTokens(inner, { source: src, resourceMetadataUrl: PRM, scopes: ['mcp'], logger: memoryLogger().logger })

const req = () => new Request('https://vmcp.example.com/mcp', { method: 'POST' })

describe('withUpstreamTokens (Mode B)', () => {
  it('loads the tsid upstream tokens into identity.upstreamTokens', async () => {
    const seen: string[] = []
    const auth = wrap(
      verified({ sub: 'alice', tsid: 'T1' }),
      source(async (tsid) => {
        seen.push(tsid)
        return { corp: new Secret('a'), github: new Secret('b') }
      }),
    )
    const r = await auth.authenticate(req())
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(seen).toEqual(['T1'])
    expect(Object.keys(r.identity.upstreamTokens)).toEqual(['corp', 'github'])
    expect(r.identity.upstreamTokens.github?.reveal()).toBe('b')
  })

  it('answers a token it checked from the cache, yet checks a provider a reload starts to require on the very next request', async () => {
    // The OIDC authenticator hands out one identity object per cached token.
    const identity = { ...ANONYMOUS_IDENTITY, subject: 'alice', issuer: 'https://vmcp.example.com', claims: { sub: 'alice', tsid: 'T1' } }
    const inner: IncomingAuthenticator = { ...verified({}), authenticate: async () => ({ ok: true, identity }) }
    let required: readonly string[] = ['corp']
    const auth = withUpstreamTokens(inner, {
      source: source(async () => ({ corp: new Secret('a') })),
      resourceMetadataUrl: PRM,
      scopes: ['mcp'],
      logger: memoryLogger().logger,
      requiredProviders: () => required,
    })
    const first = await auth.authenticate(req())
    const second = await auth.authenticate(req())
    if (!first.ok || !second.ok) throw new Error('expected success')
    expect(second.identity).toBe(first.identity)
    required = ['corp', 'github']
    const third = await auth.authenticate(req())
    if (third.ok) throw new Error('expected failure')
    expect(await third.response.json()).toEqual({
      error: 'invalid_token',
      error_description: 'no upstream token for provider github; sign in again',
    })
  })

  it('rejects a verified token without tsid: it has no upstream session', async () => {
    const r = await wrap(verified({ sub: 'alice' }), source(async () => ({}))).authenticate(req())
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.response.status).toBe(401)
    expect(await r.response.json()).toEqual({ error: 'invalid_token', error_description: 'token has no upstream session' })
  })

  it('a failed upstream refresh is 401 invalid_token naming the upstream, so the client signs in again', async () => {
    const r = await wrap(
      verified({ sub: 'alice', tsid: 'T1' }),
      source(async () => {
        throw new UpstreamRefreshError('github')
      }),
    ).authenticate(req())
    if (r.ok) throw new Error('expected failure')
    expect(r.response.status).toBe(401)
    expect(r.response.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${PRM}", scope="mcp", error="invalid_token", error_description="upstream github token is no longer valid; sign in again"`,
    )
  })

  it('an upstream session with no tokens left (revoked or expired) is 401: sign in again', async () => {
    const r = await wrap(verified({ sub: 'alice', tsid: 'T1' }), source(async () => ({}))).authenticate(req())
    if (r.ok) throw new Error('expected failure')
    expect(r.response.status).toBe(401)
    expect(await r.response.json()).toEqual({
      error: 'invalid_token',
      error_description: 'upstream session ended; sign in again',
    })
  })

  it('upstream_inject: a missing provider token is 401 naming the provider', async () => {
    const auth = withUpstreamTokens(verified({ sub: 'alice', tsid: 'T1' }), {
      source: source(async () => ({ corp: new Secret('a') })),
      resourceMetadataUrl: PRM,
      scopes: ['mcp'],
      logger: memoryLogger().logger,
      requiredProviders: ['corp', 'github'],
    })
    const r = await auth.authenticate(req())
    if (r.ok) throw new Error('expected failure')
    expect(r.response.status).toBe(401)
    expect(await r.response.json()).toEqual({
      error: 'invalid_token',
      error_description: 'no upstream token for provider github; sign in again',
    })
  })

  it('upstream_inject: the required providers are read per request (a reload can add one)', async () => {
    let required = ['corp']
    const auth = withUpstreamTokens(verified({ sub: 'alice', tsid: 'T1' }), {
      source: source(async () => ({ corp: new Secret('a') })),
      resourceMetadataUrl: PRM,
      scopes: ['mcp'],
      logger: memoryLogger().logger,
      requiredProviders: () => required,
    })
    expect((await auth.authenticate(req())).ok).toBe(true)
    required = ['corp', 'github']
    const r = await auth.authenticate(req())
    if (r.ok) throw new Error('expected failure')
    expect(r.response.status).toBe(401)
  })

  it('storage down is 503, never 401', async () => {
    const r = await wrap(
      verified({ sub: 'alice', tsid: 'T1' }),
      source(async () => {
        throw new StorageUnavailableError()
      }),
    ).authenticate(req())
    if (r.ok) throw new Error('expected failure')
    expect(r.response.status).toBe(503)
    expect(r.response.headers.get('retry-after')).toBe('5')
  })
})

describe('withUpstreamTokens: decrypted tokens kept per session', () => {
  function invalidatable(tokensFor: UpstreamTokenSource['tokensFor']) {
    const listeners: Array<(tsid: string) => void> = []
    const src: UpstreamTokenSource = {
      tokensFor,
      revoke: async (tsid) => listeners.forEach((l) => l(tsid)),
      isRevoked: async () => false,
      onRevoke: (l) => {
        listeners.push(l)
        return () => undefined
      },
      onTokensChanged: (l) => void listeners.push(l),
    }
    return { src, invalidate: (tsid: string) => listeners.forEach((l) => l(tsid)) }
  }

  it('reuses a session’s tokens without reading storage again, until they are refreshed or revoked', async () => {
    let loads = 0
    let current = 'a1'
    const { src, invalidate } = invalidatable(async () => {
      loads++
      return { corp: new Secret(current) }
    })
    const auth = wrap(verified({ sub: 'alice', tsid: 'T1' }), src)
    const token = async () => {
      const r = await auth.authenticate(req())
      return r.ok ? r.identity.upstreamTokens.corp?.reveal() : undefined
    }
    expect(await token()).toBe('a1')
    expect(await token()).toBe('a1')
    expect(loads).toBe(1)
    // A refresh stored a new access token: the next request sees it.
    current = 'a2'
    invalidate('T1')
    expect(await token()).toBe('a2')
    expect(loads).toBe(2)
    // Revoked: the next request asks storage again.
    await src.revoke('T1')
    expect(await token()).toBe('a2')
    expect(loads).toBe(3)
  })

  it('does not keep what a load read before a revoke that raced it', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let loads = 0
    const { src, invalidate } = invalidatable(async (): Promise<Record<string, Secret>> => {
      loads++
      if (loads === 1) await gate
      return loads === 1 ? { corp: new Secret('old') } : {}
    })
    const auth = wrap(verified({ sub: 'alice', tsid: 'T1' }), src)
    const first = auth.authenticate(req())
    await vi.waitFor(() => expect(loads).toBe(1))
    invalidate('T1')
    release()
    await first
    const after = await auth.authenticate(req())
    expect(after.ok).toBe(false)
    expect(loads).toBe(2)
  })
})
