import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ANONYMOUS_IDENTITY } from '../../../src/auth/incoming/identity.js'
import {
  createOutgoingAuth,
  createTokenExchangeStrategy,
  OutgoingAuthError,
  type OutgoingAuthStrategy,
  type TokenExchangeConfig,
  type TokenExchangeOptions,
} from '../../../src/auth/outgoing/index.js'
import { createLogger, Secret } from '../../../src/log/index.js'
import { createOutboundFetch } from '../../../src/net/index.js'
import { EVENTUALLY } from '../../support/wait.js'
import {
  ACCESS_TOKEN_TYPE,
  identityFor,
  startTokenEndpoint,
  TOKEN_EXCHANGE_GRANT,
  type TokenEndpoint,
  type TokenEndpointOptions,
} from './token-endpoint.js'

const CLIENT_ID = 'vmcp-gateway'
// Characters that RFC 6749 §2.3.1 form-encoding must escape inside Basic credentials.
const CLIENT_SECRET = 's3cr3t:with/special chars+&='
const ALICE_TOKEN = 'alice-incoming-token-aaaaaaaaaaaa'
const ALICE_NEW_TOKEN = 'alice-incoming-token-refreshed-bbbb'
const BOB_TOKEN = 'bob-incoming-token-cccccccccccccc'
const T0 = 1_700_000_000_000

let endpoint: TokenEndpoint
let clock: number
const fetch = createOutboundFetch()
const logger = createLogger({ level: 'silent' })

async function start(overrides: Partial<TokenEndpointOptions> = {}): Promise<void> {
  endpoint = await startTokenEndpoint({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    subjectTokens: [ALICE_TOKEN, ALICE_NEW_TOKEN, BOB_TOKEN],
    audience: 'https://backend.example.com',
    scope: 'tools:read tools:call',
    ...overrides,
  })
}

function strategy(
  config: Partial<TokenExchangeConfig> = {},
  options: Partial<TokenExchangeOptions> = {},
): OutgoingAuthStrategy {
  return createTokenExchangeStrategy(
    {
      tokenUrl: endpoint.url,
      clientId: CLIENT_ID,
      clientSecret: new Secret(CLIENT_SECRET),
      audience: 'https://backend.example.com',
      resource: 'https://backend.example.com/mcp',
      scopes: ['tools:read', 'tools:call'],
      subjectTokenType: ACCESS_TOKEN_TYPE,
      ...config,
    },
    { backend: 'alpha', logger, fetch, now: () => clock, ...options },
  )
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!(err instanceof Error)) throw new Error('expected a rejection with an Error')
  return err
}

beforeEach(() => {
  clock = T0
})

afterEach(async () => {
  await endpoint?.close()
})

describe('token_exchange strategy', () => {
  it('is identity-scoped', async () => {
    await start()
    const s = strategy()
    expect(s.type).toBe('token_exchange')
    expect(s.identityScoped).toBe(true)
  })

  it('RFC 8693 §2.1: exchanges the caller token, sends the issued one as Bearer', async () => {
    await start()
    const headers = await strategy().headers(identityFor('alice', ALICE_TOKEN))

    expect(headers).toEqual({ Authorization: 'Bearer backend-token-1' })
    expect(endpoint.requests).toHaveLength(1)
    expect(Object.fromEntries(endpoint.requests[0]!)).toEqual({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: ALICE_TOKEN,
      subject_token_type: ACCESS_TOKEN_TYPE,
      requested_token_type: ACCESS_TOKEN_TYPE,
      audience: 'https://backend.example.com',
      resource: 'https://backend.example.com/mcp',
      scope: 'tools:read tools:call',
    })
  })

  it('omits audience, resource and scope when not configured', async () => {
    await start({ audience: undefined, scope: undefined })
    await strategy({ audience: undefined, resource: undefined, scopes: [] }).headers(
      identityFor('alice', ALICE_TOKEN),
    )
    const sent = endpoint.requests[0]!
    expect(sent.has('audience')).toBe(false)
    expect(sent.has('resource')).toBe(false)
    expect(sent.has('scope')).toBe(false)
  })

  it('works through createOutgoingAuth with the default outbound fetch', async () => {
    await start()
    const s = createOutgoingAuth(
      {
        type: 'token_exchange',
        tokenExchange: {
          tokenUrl: endpoint.url,
          clientId: CLIENT_ID,
          clientSecret: new Secret(CLIENT_SECRET),
          audience: 'https://backend.example.com',
          scopes: ['tools:read', 'tools:call'],
          subjectTokenType: ACCESS_TOKEN_TYPE,
        },
      },
      { backend: 'alpha', logger },
    )
    expect(await s.headers(identityFor('alice', ALICE_TOKEN))).toEqual({
      Authorization: 'Bearer backend-token-1',
    })
  })

  describe('subjectProviderName (Mode B: exchange an upstream token)', () => {
    const modeB = (upstreamTokens: Record<string, Secret>) => ({
      ...identityFor('alice', 'vmcp-own-jwt-never-exchanged'),
      upstreamTokens,
    })

    it("sends the user's token from that upstream as subject_token, never vmcp's own JWT", async () => {
      await start()
      const s = strategy({ subjectProviderName: 'corp' })
      const headers = await s.headers(modeB({ corp: new Secret(ALICE_TOKEN), other: new Secret(BOB_TOKEN) }))
      expect(headers).toEqual({ Authorization: 'Bearer backend-token-1' })
      expect(endpoint.requests[0]?.get('subject_token')).toBe(ALICE_TOKEN)
    })

    it('fails without contacting the endpoint when that upstream token is missing', async () => {
      await start()
      const err = await rejection(strategy({ subjectProviderName: 'corp' }).headers(modeB({ other: new Secret(BOB_TOKEN) })))
      expect(err.message).toBe('backend alpha: no upstream token for provider corp to exchange; sign in again')
      // A provider name that is an Object.prototype member is not a token either.
      const proto = await rejection(strategy({ subjectProviderName: 'constructor' }).headers(modeB({})))
      expect(proto.message).toBe('backend alpha: no upstream token for provider constructor to exchange; sign in again')
      expect(endpoint.requests).toHaveLength(0)
    })
  })

  describe('caller', () => {
    it.each([
      ['no identity', undefined],
      ['the anonymous identity', ANONYMOUS_IDENTITY],
      [
        'an identity with an empty token',
        { ...ANONYMOUS_IDENTITY, subject: 'x', token: new Secret('') },
      ],
    ])('fails for %s without contacting the endpoint', async (_, identity) => {
      await start()
      const err = await rejection(strategy().headers(identity))
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toBe('backend alpha: token_exchange needs an authenticated caller')
      expect(endpoint.requests).toHaveLength(0)
    })
  })

  describe('cache', () => {
    it('serves a second call from the cache', async () => {
      await start()
      const s = strategy()
      const first = await s.headers(identityFor('alice', ALICE_TOKEN))
      const second = await s.headers(identityFor('alice', ALICE_TOKEN))
      expect(second).toEqual(first)
      expect(endpoint.requests).toHaveLength(1)
    })

    it('keeps callers apart', async () => {
      await start()
      const s = strategy()
      const alice = await s.headers(identityFor('alice', ALICE_TOKEN))
      const bob = await s.headers(identityFor('bob', BOB_TOKEN))
      expect(alice).toEqual({ Authorization: 'Bearer backend-token-1' })
      expect(bob).toEqual({ Authorization: 'Bearer backend-token-2' })
      expect(endpoint.requests.map((p) => p.get('subject_token'))).toEqual([ALICE_TOKEN, BOB_TOKEN])
    })

    it('exchanges again when the same subject presents a new incoming token', async () => {
      await start()
      const s = strategy()
      await s.headers(identityFor('alice', ALICE_TOKEN))
      const renewed = await s.headers(identityFor('alice', ALICE_NEW_TOKEN))
      expect(renewed).toEqual({ Authorization: 'Bearer backend-token-2' })
      expect(endpoint.requests[1]!.get('subject_token')).toBe(ALICE_NEW_TOKEN)
    })

    it('is per strategy instance, i.e. per backend', async () => {
      await start()
      await strategy().headers(identityFor('alice', ALICE_TOKEN))
      await strategy().headers(identityFor('alice', ALICE_TOKEN))
      expect(endpoint.requests).toHaveLength(2)
    })

    it('keeps a token until expires_in minus 30 s', async () => {
      await start({ reply: (_, n) => ok(`backend-token-${n}`, 120) })
      const s = strategy()
      const alice = identityFor('alice', ALICE_TOKEN)
      await s.headers(alice)
      clock = T0 + 89_999
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-1' })
      clock = T0 + 90_000
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-2' })
      expect(endpoint.requests).toHaveLength(2)
    })

    it('RFC 8693 §2.2.1: without expires_in, keeps a token for 60 s', async () => {
      await start({ reply: (_, n) => ok(`backend-token-${n}`, undefined) })
      const s = strategy()
      const alice = identityFor('alice', ALICE_TOKEN)
      await s.headers(alice)
      clock = T0 + 59_999
      await s.headers(alice)
      expect(endpoint.requests).toHaveLength(1)
      clock = T0 + 60_000
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-2' })
    })

    it("never serves a cached token past the subject token's exp (minus 30 s)", async () => {
      await start({ reply: (_, n) => ok(`backend-token-${n}`, 3600) })
      const s = strategy()
      const alice = identityFor('alice', ALICE_TOKEN, { exp: T0 / 1000 + 100 })
      await s.headers(alice)
      clock = T0 + 69_999
      await s.headers(alice)
      expect(endpoint.requests).toHaveLength(1)
      clock = T0 + 70_000
      await s.headers(alice)
      expect(endpoint.requests).toHaveLength(2)
    })

    it('does not cache a token that expires within the skew', async () => {
      await start({ reply: (_, n) => ok(`backend-token-${n}`, 20) })
      const s = strategy()
      const alice = identityFor('alice', ALICE_TOKEN)
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-1' })
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-2' })
    })

    it('is bounded: the least recently used entry is evicted', async () => {
      await start()
      const s = strategy({}, { maxCacheEntries: 2 })
      const alice = identityFor('alice', ALICE_TOKEN)
      const alice2 = identityFor('alice', ALICE_NEW_TOKEN)
      const bob = identityFor('bob', BOB_TOKEN)
      await s.headers(alice) // 1
      await s.headers(bob) // 2
      await s.headers(alice) // hit: bob is now least recently used
      await s.headers(alice2) // 3, evicts bob
      await s.headers(alice) // hit
      expect(endpoint.requests).toHaveLength(3)
      expect(await s.headers(bob)).toEqual({ Authorization: 'Bearer backend-token-4' })
    })

    it('does not cache failures', async () => {
      let fail = true
      await start({
        reply: (_, n) =>
          fail ? { status: 400, body: { error: 'invalid_grant' } } : ok(`backend-token-${n}`, 300),
      })
      const s = strategy()
      const alice = identityFor('alice', ALICE_TOKEN)
      await expect(s.headers(alice)).rejects.toThrow(OutgoingAuthError)
      fail = false
      expect(await s.headers(alice)).toEqual({ Authorization: 'Bearer backend-token-2' })
      expect(endpoint.requests).toHaveLength(2)
    })
  })

  describe('single-flight', () => {
    it('10 concurrent calls for one caller make one request', async () => {
      await start()
      const s = strategy()
      endpoint.hold()
      const calls = Array.from({ length: 10 }, () => s.headers(identityFor('alice', ALICE_TOKEN)))
      await vi.waitFor(() => expect(endpoint.requests).toHaveLength(1), EVENTUALLY)
      endpoint.release()
      const results = await Promise.all(calls)
      expect(endpoint.requests).toHaveLength(1)
      for (const r of results) expect(r).toEqual({ Authorization: 'Bearer backend-token-1' })
    })

    it('concurrent calls share one failure', async () => {
      await start()
      const s = strategy()
      const eve = identityFor('eve', 'not-a-valid-token')
      const calls = Array.from({ length: 5 }, () => s.headers(eve))
      const errors = await Promise.all(calls.map(rejection))
      expect(endpoint.requests).toHaveLength(1)
      for (const e of errors) expect(e).toBeInstanceOf(OutgoingAuthError)
    })

    it("one caller's abort does not cancel the shared exchange", async () => {
      await start()
      const s = strategy()
      endpoint.hold()
      const controller = new AbortController()
      const aborted = s.headers(identityFor('alice', ALICE_TOKEN), controller.signal)
      const patient = s.headers(identityFor('alice', ALICE_TOKEN))
      await vi.waitFor(() => expect(endpoint.requests).toHaveLength(1), EVENTUALLY)
      controller.abort(new Error('client went away'))
      expect((await rejection(aborted)).message).toBe('client went away')
      endpoint.release()
      expect(await patient).toEqual({ Authorization: 'Bearer backend-token-1' })
      expect(endpoint.requests).toHaveLength(1)
    })

    it('an already aborted signal fails before any request', async () => {
      await start()
      const err = await rejection(
        strategy().headers(identityFor('alice', ALICE_TOKEN), AbortSignal.abort(new Error('gone'))),
      )
      expect(err.message).toBe('gone')
      expect(endpoint.requests).toHaveLength(0)
    })
  })

  describe('errors', () => {
    it('RFC 6749 §5.2: maps invalid_grant to an error naming backend and code', async () => {
      await start()
      const err = await rejection(strategy().headers(identityFor('eve', 'eve-unknown-token-123')))
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toBe(
        'backend alpha: token exchange failed: invalid_grant (HTTP 400): subject token is not valid',
      )
      expect(err.message).not.toContain('eve-unknown-token-123')
      expect(err.cause).toBeUndefined()
    })

    it('redacts a subject token or client secret echoed in error_description', async () => {
      await start({
        reply: (params) => ({
          status: 400,
          body: {
            error: 'invalid_grant',
            error_description: `bad token ${params.get('subject_token')} for ${CLIENT_SECRET}`,
          },
        }),
      })
      const err = await rejection(strategy().headers(identityFor('alice', ALICE_TOKEN)))
      expect(err.message).toBe(
        'backend alpha: token exchange failed: invalid_grant (HTTP 400): bad token [REDACTED] for [REDACTED]',
      )
    })

    it('RFC 6749 §2.3.1: a wrong client secret gives invalid_client (401)', async () => {
      await start()
      const err = await rejection(
        strategy({ clientSecret: new Secret('wrong') }).headers(identityFor('alice', ALICE_TOKEN)),
      )
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toBe(
        'backend alpha: token exchange failed: invalid_client (HTTP 401): client authentication failed',
      )
    })

    it('maps a non-OAuth answer to an invalid response error', async () => {
      await start({ reply: () => ({ status: 502, body: 'bad gateway' }) })
      const err = await rejection(strategy().headers(identityFor('alice', ALICE_TOKEN)))
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toMatch(
        /^backend alpha: token exchange failed: invalid token endpoint response: /,
      )
    })

    it('maps a success answer without access_token to an invalid response error', async () => {
      await start({ reply: () => ({ status: 200, body: { token_type: 'Bearer' } }) })
      const err = await rejection(strategy().headers(identityFor('alice', ALICE_TOKEN)))
      expect(err.message).toMatch(
        /^backend alpha: token exchange failed: invalid token endpoint response: /,
      )
    })

    it.each(['N_A', 'DPoP'])('RFC 8693 §2.2.1: refuses token_type %s', async (tokenType) => {
      await start({
        reply: () => ({ status: 200, body: { access_token: 'x-token', token_type: tokenType } }),
      })
      const err = await rejection(strategy().headers(identityFor('alice', ALICE_TOKEN)))
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toMatch(/^backend alpha: token exchange failed: /)
      expect(err.message).not.toContain('x-token')
    })

    it("MCP token passthrough: refuses an issued token equal to the caller's token", async () => {
      await start({ reply: (params) => ok(params.get('subject_token')!, 300) })
      const err = await rejection(strategy().headers(identityFor('alice', ALICE_TOKEN)))
      expect(err.message).toBe(
        "backend alpha: token exchange failed: token endpoint returned the caller's own token; refusing to forward it",
      )
    })

    it('names the backend when the endpoint is unreachable', async () => {
      await start()
      const url = endpoint.url
      await endpoint.close()
      const err = await rejection(
        strategy({ tokenUrl: url }).headers(identityFor('alice', ALICE_TOKEN)),
      )
      expect(err).toBeInstanceOf(OutgoingAuthError)
      expect(err.message).toMatch(
        /^backend alpha: token exchange failed: token endpoint request failed: /,
      )
    })

    it('gives up after timeoutMs', async () => {
      await start()
      endpoint.hold()
      const err = await rejection(
        strategy({}, { timeoutMs: 50 }).headers(identityFor('alice', ALICE_TOKEN)),
      )
      expect(err.message).toBe(
        'backend alpha: token exchange failed: token endpoint did not answer within 50 ms',
      )
    })
  })
})

function ok(accessToken: string, expiresIn: number | undefined) {
  return {
    status: 200,
    body: {
      access_token: accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
    },
  }
}
