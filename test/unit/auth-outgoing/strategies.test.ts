import { describe, expect, it } from 'vitest'
import { ANONYMOUS_IDENTITY, type Identity } from '../../../src/auth/incoming/identity.js'
import {
  createHeaderInjectionStrategy,
  createOutgoingAuth,
  createUnauthenticatedStrategy,
  createUpstreamInjectStrategy,
  OutgoingAuthError,
} from '../../../src/auth/outgoing/index.js'
import { createLogger, Secret } from '../../../src/log/index.js'
import { identityFor } from './token-endpoint.js'

const logger = createLogger({ level: 'silent' })
const CALLER_TOKEN = 'caller-incoming-token-zzzzzzzz'

function withUpstream(tokens: Record<string, string>): Identity {
  const upstreamTokens = Object.fromEntries(
    Object.entries(tokens).map(([k, v]) => [k, new Secret(v)]),
  )
  return { ...identityFor('alice', CALLER_TOKEN), upstreamTokens }
}

describe('unauthenticated strategy', () => {
  it('sends no headers, for anyone', async () => {
    const s = createUnauthenticatedStrategy()
    expect(s.type).toBe('unauthenticated')
    expect(s.identityScoped).toBe(false)
    expect(await s.headers(undefined)).toEqual({})
    expect(await s.headers(identityFor('alice', CALLER_TOKEN))).toEqual({})
    expect(s.headersNow?.(undefined)).toEqual({})
  })
})

describe('header_injection strategy', () => {
  const config = { headers: { 'X-Api-Key': new Secret('backend-api-key-123') } }

  it('sends the configured header with the revealed secret', async () => {
    const s = createHeaderInjectionStrategy(config)
    expect(s.type).toBe('header_injection')
    expect(s.identityScoped).toBe(false)
    expect(await s.headers(undefined)).toEqual({ 'X-Api-Key': 'backend-api-key-123' })
  })

  it('is the same whoever calls', async () => {
    const s = createHeaderInjectionStrategy(config)
    expect(await s.headers(identityFor('alice', CALLER_TOKEN))).toEqual({
      'X-Api-Key': 'backend-api-key-123',
    })
    expect(await s.headers(ANONYMOUS_IDENTITY)).toEqual({ 'X-Api-Key': 'backend-api-key-123' })
  })

  it('returns a fresh object each call', async () => {
    const s = createHeaderInjectionStrategy(config)
    const first = await s.headers(undefined)
    first['X-Api-Key'] = 'tampered'
    expect(await s.headers(undefined)).toEqual({ 'X-Api-Key': 'backend-api-key-123' })
  })

  it('sends several headers (Datadog: API key and application key)', async () => {
    const s = createHeaderInjectionStrategy({
      headers: { 'DD-API-KEY': new Secret('api-1'), 'DD-APPLICATION-KEY': new Secret('app-2') },
    })
    expect(await s.headers(undefined)).toEqual({ 'DD-API-KEY': 'api-1', 'DD-APPLICATION-KEY': 'app-2' })
  })

  it('knows its headers without waiting: one frozen object, whoever calls', () => {
    const s = createHeaderInjectionStrategy(config)
    const now = s.headersNow?.(undefined)
    expect(now).toEqual({ 'X-Api-Key': 'backend-api-key-123' })
    expect(Object.isFrozen(now)).toBe(true)
    expect(s.headersNow?.(identityFor('alice', CALLER_TOKEN))).toBe(now)
  })
})

describe('upstream_inject strategy', () => {
  const s = createUpstreamInjectStrategy({ providerName: 'github' }, { backend: 'gh' })

  it('is identity-scoped', () => {
    expect(s.type).toBe('upstream_inject')
    expect(s.identityScoped).toBe(true)
  })

  it("RFC 6750 §2.1: sends the caller's upstream token as Bearer", async () => {
    const headers = await s.headers(withUpstream({ github: 'gho_upstream123', google: 'ya29.x' }))
    expect(headers).toEqual({ Authorization: 'Bearer gho_upstream123' })
  })

  it.each([
    ['no identity', undefined],
    ['the anonymous identity', ANONYMOUS_IDENTITY],
    ['another provider only', withUpstream({ google: 'ya29.x' })],
    ['an empty token', withUpstream({ github: '' })],
  ])('fails with sign-in-again for %s', async (_, identity) => {
    const err = await s.headers(identity).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(OutgoingAuthError)
    expect((err as Error).message).toBe(
      'backend gh: no upstream token for provider github; sign in again',
    )
  })

  it('does not read provider names off the prototype', async () => {
    const proto = createUpstreamInjectStrategy({ providerName: 'constructor' }, { backend: 'gh' })
    await expect(proto.headers(withUpstream({}))).rejects.toThrow(
      'backend gh: no upstream token for provider constructor; sign in again',
    )
  })

  it("MCP token passthrough: refuses an upstream token equal to the caller's token", async () => {
    await expect(s.headers(withUpstream({ github: CALLER_TOKEN }))).rejects.toThrow(
      OutgoingAuthError,
    )
    expect(s.headersNow?.(withUpstream({ github: CALLER_TOKEN }))).toBeUndefined()
  })

  it('knows the header without waiting, per identity: new upstream tokens (a refresh) give the new token', () => {
    const before = withUpstream({ github: 'gho_before' })
    const now = s.headersNow?.(before)
    expect(now).toEqual({ Authorization: 'Bearer gho_before' })
    expect(s.headersNow?.(before)).toBe(now)
    // Incoming auth makes a new Identity when the upstream tokens change: never the old header.
    const refreshed = { ...before, upstreamTokens: { github: new Secret('gho_after') } }
    expect(s.headersNow?.(refreshed)).toEqual({ Authorization: 'Bearer gho_after' })
    // No token (revoked, never signed in): only headers() can say why.
    for (const identity of [undefined, ANONYMOUS_IDENTITY, withUpstream({ google: 'ya29.x' })]) {
      expect(s.headersNow?.(identity)).toBeUndefined()
    }
  })
})

describe('createOutgoingAuth', () => {
  const options = { backend: 'b1', logger }

  it('builds each strategy type from its config', async () => {
    expect(createOutgoingAuth({ type: 'unauthenticated' }, options).type).toBe('unauthenticated')
    const header = createOutgoingAuth(
      { type: 'header_injection', headerInjection: { headers: { 'X-K': new Secret('v') } } },
      options,
    )
    expect(await header.headers(undefined)).toEqual({ 'X-K': 'v' })
    const upstream = createOutgoingAuth(
      { type: 'upstream_inject', upstreamInject: { providerName: 'github' } },
      options,
    )
    await expect(upstream.headers(undefined)).rejects.toThrow(
      'backend b1: no upstream token for provider github; sign in again',
    )
    const exchange = createOutgoingAuth(
      {
        type: 'token_exchange',
        tokenExchange: {
          tokenUrl: 'https://as.example.com/token',
          clientId: 'c',
          clientSecret: new Secret('s'),
          scopes: [],
          subjectTokenType: 'urn:ietf:params:oauth:token-type:access_token',
        },
      },
      options,
    )
    expect(exchange.type).toBe('token_exchange')
    expect(exchange.identityScoped).toBe(true)
    await expect(exchange.headers(undefined)).rejects.toThrow(
      'backend b1: token_exchange needs an authenticated caller',
    )
  })

  it("MCP token passthrough: no strategy puts the caller's token in a header", async () => {
    const caller = withUpstream({ github: 'gho_upstream123' })
    const strategies = [
      createOutgoingAuth({ type: 'unauthenticated' }, options),
      createOutgoingAuth(
        {
          type: 'header_injection',
          headerInjection: { headers: { 'X-K': new Secret('v') } },
        },
        options,
      ),
      createOutgoingAuth(
        { type: 'upstream_inject', upstreamInject: { providerName: 'github' } },
        options,
      ),
    ]
    for (const s of strategies) {
      const values = Object.values(await s.headers(caller)).join('\n')
      expect(values).not.toContain(CALLER_TOKEN)
    }
  })
})
