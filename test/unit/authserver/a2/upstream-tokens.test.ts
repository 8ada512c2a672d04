import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { UpstreamRefreshError } from '../../../../src/authserver/contracts.js'
import {
  createUpstreamTokenStore,
  UPSTREAM_TOKENS_KIND,
  type UpstreamTokenStore,
} from '../../../../src/authserver/upstream-tokens.js'
import { UpstreamAuthError, type UpstreamClient, type UpstreamTokenSet } from '../../../../src/authserver/upstreams.js'
import { createLogger } from '../../../../src/log/index.js'
import { EVENTUALLY } from '../../../support/wait.js'
import {
  createMemoryStore,
  createSealer,
  StorageUnavailableError,
  type Sealer,
  type Store,
} from '../../../../src/storage/index.js'

const DAY = 86_400_000
let t: number
let store: Store
let sealer: Sealer
let refreshCalls: string[]
let revokeCalls: string[]
let refreshImpl: (rt: string) => Promise<UpstreamTokenSet>
let tokens: UpstreamTokenStore

const stubClient = (name: string): UpstreamClient => ({
  name,
  type: 'oidc',
  authorizationUrl: () => Promise.reject(new Error('not used')),
  exchangeCode: () => Promise.reject(new Error('not used')),
  async refresh(rt) {
    refreshCalls.push(`${name}:${rt}`)
    return refreshImpl(rt)
  },
  async revoke({ accessToken, refreshToken }) {
    revokeCalls.push(`${name}:${accessToken}:${refreshToken ?? '-'}`)
    return true
  },
})

beforeEach(() => {
  t = 1_800_000_000_000
  store = createMemoryStore()
  sealer = createSealer(randomBytes(32))
  refreshCalls = []
  revokeCalls = []
  refreshImpl = async (rt) => ({ accessToken: `at-from-${rt}`, refreshToken: `${rt}+1`, expiresAt: t + 600_000 })
  tokens = createUpstreamTokenStore({
    store,
    sealer,
    upstreams: [stubClient('a'), stubClient('b')],
    logger: createLogger({ level: 'silent' }),
    now: () => t,
  })
})

afterEach(async () => {
  await store.close()
})

describe('upstream token storage', () => {
  it('returns access tokens per upstream as Secrets; absent upstreams are omitted', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a', expiresAt: t + 600_000 }, DAY)
    const out = await tokens.tokensFor('s1')
    expect(Object.keys(out)).toEqual(['a'])
    expect(out.a!.reveal()).toBe('at-a')
    expect(JSON.stringify(out)).toBe('{"a":"[REDACTED]"}')
    expect(await tokens.tokensFor('other')).toEqual({})
  })

  it('seals the row: the stored value holds no token', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-SECRET', refreshToken: 'rt-SECRET', idToken: 'id-SECRET' }, DAY)
    const raw = JSON.stringify(await store.get(UPSTREAM_TOKENS_KIND, 's1:a'))
    expect(raw).not.toMatch(/SECRET/)
  })

  it('a token without expiresAt is never refreshed', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a' }, DAY)
    t += 30 * 60_000
    expect((await tokens.tokensFor('s1')).a!.reveal()).toBe('at-a')
    expect(refreshCalls).toEqual([])
  })

  it('refreshes within the skew (30 s) before expiry and stores the rotated refresh token', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a', expiresAt: t + 60_000 }, DAY)
    t += 29_000
    expect((await tokens.tokensFor('s1')).a!.reveal()).toBe('at-a')
    t += 2_000
    expect((await tokens.tokensFor('s1')).a!.reveal()).toBe('at-from-rt-a')
    t += 700_000
    expect((await tokens.tokensFor('s1')).a!.reveal()).toBe('at-from-rt-a+1')
    expect(refreshCalls).toEqual(['a:rt-a', 'a:rt-a+1'])
  })

  it('keeps the old refresh token when the upstream does not rotate it (RFC 6749 §6)', async () => {
    refreshImpl = async () => ({ accessToken: 'at-2', expiresAt: t + 600_000 })
    await tokens.save('s1', 'a', { accessToken: 'at-1', refreshToken: 'rt-a', expiresAt: t - 1 }, DAY)
    await tokens.tokensFor('s1')
    t += 700_000
    await tokens.tokensFor('s1')
    expect(refreshCalls).toEqual(['a:rt-a', 'a:rt-a'])
  })

  it('an expired access token without a refresh token → UpstreamRefreshError naming the upstream', async () => {
    await tokens.save('s1', 'b', { accessToken: 'at-b', expiresAt: t - 1 }, DAY)
    const err = await tokens.tokensFor('s1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UpstreamRefreshError)
    expect((err as UpstreamRefreshError).upstream).toBe('b')
  })

  it('a transient refresh failure keeps the refresh token; the next call retries', async () => {
    refreshImpl = async () => {
      throw new UpstreamAuthError('a', 'server_error', 'refresh failed: fetch failed')
    }
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a', expiresAt: t - 1 }, DAY)
    await expect(tokens.tokensFor('s1')).rejects.toBeInstanceOf(UpstreamRefreshError)
    await expect(tokens.tokensFor('s1')).rejects.toBeInstanceOf(UpstreamRefreshError)
    expect(refreshCalls).toEqual(['a:rt-a', 'a:rt-a'])
  })

  it('OIDC Core §12.2: a refreshed ID token for another subject → UpstreamRefreshError', async () => {
    refreshImpl = async () => ({ accessToken: 'at-2', subject: 'mallory', expiresAt: t + 600_000 })
    await tokens.save('s1', 'a', { accessToken: 'at-1', refreshToken: 'rt', subject: 'alice', expiresAt: t - 1 }, DAY)
    const err = await tokens.tokensFor('s1').catch((e: unknown) => e)
    expect((err as UpstreamRefreshError).upstream).toBe('a')
  })

  it('a tampered row, or a row moved under another session, is refused', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a' }, DAY)
    const row = await store.get<{ sealed: string; sessionExpiresAt: number }>(UPSTREAM_TOKENS_KIND, 's1:a')
    // Moved: s2 gets s1's sealed tokens.
    await store.put(UPSTREAM_TOKENS_KIND, 's2:a', row, DAY)
    expect(((await tokens.tokensFor('s2').catch((e: unknown) => e)) as UpstreamRefreshError).upstream).toBe('a')
    // Tampered ciphertext.
    const sealed = row!.sealed
    // Flip the second-to-last character (it always carries ciphertext bits) to another one.
    const flipped = `${sealed.slice(0, -2)}${sealed.at(-2) === 'A' ? 'B' : 'A'}${sealed.slice(-1)}`
    await store.put(UPSTREAM_TOKENS_KIND, 's1:a', { ...row, sealed: flipped }, DAY)
    await expect(tokens.tokensFor('s1')).rejects.toBeInstanceOf(UpstreamRefreshError)
  })

  it('StorageUnavailableError propagates as is (503, not 401)', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt', expiresAt: t - 1 }, DAY)
    await store.close()
    const err = await tokens.tokensFor('s1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StorageUnavailableError)
  })

  it('a caller that aborts stops waiting; the shared refresh still completes and is stored', async () => {
    let release: (() => void) | undefined
    refreshImpl = (rt) =>
      new Promise((resolve) => {
        release = () => resolve({ accessToken: `at-from-${rt}`, refreshToken: `${rt}+1`, expiresAt: t + 600_000 })
      })
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a', expiresAt: t - 1 }, DAY)
    const controller = new AbortController()
    const aborted = tokens.tokensFor('s1', controller.signal)
    const waiting = tokens.tokensFor('s1')
    // Both callers are waiting once the shared refresh has started.
    await vi.waitFor(() => expect(release).toBeDefined(), EVENTUALLY)
    controller.abort(new Error('client went away'))
    await expect(aborted).rejects.toThrow('client went away')
    release?.()
    expect((await waiting).a!.reveal()).toBe('at-from-rt-a')
    expect(refreshCalls).toEqual(['a:rt-a'])
  })

  it('revoke deletes every upstream row of the session and nothing else', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a' }, DAY)
    await tokens.save('s1', 'b', { accessToken: 'at-b' }, DAY)
    await tokens.save('s2', 'a', { accessToken: 'at-other' }, DAY)
    await tokens.revoke('s1')
    expect(await tokens.tokensFor('s1')).toEqual({})
    expect((await tokens.tokensFor('s2')).a!.reveal()).toBe('at-other')
  })

  it('revoke also revokes the stored tokens at each upstream, and tells the onRevoke listeners', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a' }, DAY)
    await tokens.save('s1', 'b', { accessToken: 'at-b' }, DAY)
    const heard: string[] = []
    const unsubscribe = tokens.onRevoke((tsid) => heard.push(tsid))
    expect(await tokens.isRevoked('s1')).toBe(false)
    await tokens.revoke('s1')
    expect(await tokens.isRevoked('s1')).toBe(true)
    expect(revokeCalls.sort()).toEqual(['a:at-a:rt-a', 'b:at-b:-'])
    expect(heard).toEqual(['s1'])
    unsubscribe()
    await tokens.revoke('s2')
    expect(heard).toEqual(['s1'])
  })

  it('a revocation racing an upstream refresh stays revoked; the fresh tokens are revoked upstream', async () => {
    let answer!: () => void
    refreshImpl = (rt) =>
      new Promise((resolve) => {
        answer = () => resolve({ accessToken: `at-from-${rt}`, refreshToken: `${rt}+1`, expiresAt: t + 600_000 })
      })
    await tokens.save('s1', 'a', { accessToken: 'at-a', refreshToken: 'rt-a', expiresAt: t - 1 }, DAY)
    const inFlight = tokens.tokensFor('s1').catch((e: unknown) => e)
    // The upstream has the refresh request; its answer is held until the revocation is done.
    await vi.waitFor(() => expect(refreshCalls).toEqual(['a:rt-a']), { timeout: 10_000 })
    await tokens.revoke('s1')
    answer()
    const err = await inFlight
    expect(err).toBeInstanceOf(UpstreamRefreshError)
    // Nothing was written back: the session stays revoked, and the new tokens die upstream too.
    expect(await store.get(UPSTREAM_TOKENS_KIND, 's1:a')).toBeUndefined()
    expect(await tokens.tokensFor('s1')).toEqual({})
    expect(revokeCalls).toEqual(['a:at-a:rt-a', 'a:at-from-rt-a:rt-a+1'])
    // Nor can a later extend (a vmcp refresh racing the revocation) bring a row back.
    await tokens.extend('s1', DAY)
    expect(await store.get(UPSTREAM_TOKENS_KIND, 's1:a')).toBeUndefined()
    await expect(tokens.save('s1', 'a', { accessToken: 'late' }, DAY)).rejects.toBeInstanceOf(UpstreamRefreshError)
    expect(await store.get(UPSTREAM_TOKENS_KIND, 's1:a')).toBeUndefined()
  })

  it('extend rewrites the rows with a longer life, keeping their tokens', async () => {
    await tokens.save('s1', 'a', { accessToken: 'at-a' }, 60_000)
    await tokens.extend('s1', DAY)
    const row = await store.get<{ sessionExpiresAt: number }>(UPSTREAM_TOKENS_KIND, 's1:a')
    expect(row!.sessionExpiresAt).toBe(t + DAY)
    expect((await tokens.tokensFor('s1')).a!.reveal()).toBe('at-a')
  })
})
