// One contract for every Store implementation: memory (injected clock) and Redis (a real
// redis-server).
import { randomBytes, randomUUID } from 'node:crypto'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import {
  createMemoryStore,
  createRedisStore,
  createSealedStore,
  createSealer,
  StorageUnavailableError,
  type Store,
} from '../../../src/storage/index.js'
import { startRedis, type RedisServer } from '../../support/redis.js'
import { EVENTUALLY } from '../../support/wait.js'

interface StoreHarness {
  store: Store
  /**
   * Lets `ms` pass on the store's clock. The memory store's clock is fake and jumps; Redis runs on
   * real time, so this is a no-op there and the tests poll with `vi.waitFor` instead of sleeping.
   */
  elapse(ms: number): void
}

// Short enough that Redis-backed expiry tests finish quickly, long enough for PX to be meaningful.
const SHORT_TTL = 150
const LONG_TTL = 60_000
// Generous: Redis expiry is polled on a loaded CI box, and nothing asserts how fast it happens.
const POLL = EVENTUALLY

function storeContract(name: string, makeStore: () => StoreHarness | Promise<StoreHarness>) {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHarness
    let store: Store
    beforeEach(async () => {
      h = await makeStore()
      store = h.store
    })
    afterEach(async () => {
      await store.close()
    })

    const expectGone = (kind: string, id: string) =>
      vi.waitFor(async () => expect(await store.get(kind, id)).toBeUndefined(), POLL)

    it('round-trips nested JSON', async () => {
      const value = {
        clientId: 'c-1',
        scopes: ['openid', 'tools:read'],
        nested: { deep: { n: 42, f: 1.5, neg: -1, ok: true, nothing: null, empty: {}, list: [] } },
        text: 'ünïcødé ✓ "quoted" \n newline',
      }
      await store.put('grant', 'g1', value, LONG_TTL)
      expect(await store.get('grant', 'g1')).toEqual(value)
      await store.put('scalar', 'n', 7, LONG_TTL)
      await store.put('scalar', 's', 'text', LONG_TTL)
      await store.put('scalar', 'null', null, LONG_TTL)
      expect(await store.get('scalar', 'n')).toBe(7)
      expect(await store.get('scalar', 's')).toBe('text')
      expect(await store.get('scalar', 'null')).toBeNull()
    })

    it('keeps JSON semantics: Dates become strings, undefined members vanish', async () => {
      const at = new Date('2026-01-02T03:04:05.000Z')
      await store.put('grant', 'g1', { at, gone: undefined, kept: 1 }, LONG_TTL)
      expect(await store.get('grant', 'g1')).toStrictEqual({
        at: '2026-01-02T03:04:05.000Z',
        kept: 1,
      })
      await expect(store.put('grant', 'g2', undefined, LONG_TTL)).rejects.toBeInstanceOf(TypeError)
    })

    it('isolates stored state from the caller’s objects', async () => {
      const value = { list: [1, 2], inner: { a: 1 } }
      await store.put('grant', 'g1', value, LONG_TTL)
      value.list.push(3)
      value.inner.a = 99
      const read = await store.get<typeof value>('grant', 'g1')
      expect(read).toEqual({ list: [1, 2], inner: { a: 1 } })
      read!.inner.a = 5
      expect(await store.get('grant', 'g1')).toEqual({ list: [1, 2], inner: { a: 1 } })
    })

    it('returns undefined for a missing key', async () => {
      expect(await store.get('grant', 'missing')).toBeUndefined()
    })

    it('overwrites on put', async () => {
      await store.put('grant', 'g1', { v: 1 }, LONG_TTL)
      await store.put('grant', 'g1', { v: 2 }, LONG_TTL)
      expect(await store.get('grant', 'g1')).toEqual({ v: 2 })
    })

    it('keeps kinds apart for the same id', async () => {
      await store.put('code', 'same', 'a code', LONG_TTL)
      await store.put('token', 'same', 'a token', LONG_TTL)
      expect(await store.get('code', 'same')).toBe('a code')
      expect(await store.get('token', 'same')).toBe('a token')
    })

    it('expires entries after their TTL', async () => {
      await store.put('code', 'short', { v: 1 }, SHORT_TTL)
      await store.put('code', 'long', { v: 2 }, LONG_TTL)
      h.elapse(SHORT_TTL)
      await expectGone('code', 'short')
      expect(await store.get('code', 'long')).toEqual({ v: 2 })
      expect(await store.take('code', 'short')).toBeUndefined()
    })

    it('putIfAbsent writes only when absent', async () => {
      expect(await store.putIfAbsent('jti', 'j1', { first: true }, LONG_TTL)).toBe(true)
      expect(await store.putIfAbsent('jti', 'j1', { first: false }, LONG_TTL)).toBe(false)
      expect(await store.get('jti', 'j1')).toEqual({ first: true })
      await store.delete('jti', 'j1')
      expect(await store.putIfAbsent('jti', 'j1', { again: true }, LONG_TTL)).toBe(true)
      expect(await store.get('jti', 'j1')).toEqual({ again: true })
    })

    it('putIfAbsent succeeds again once the previous value expired', async () => {
      expect(await store.putIfAbsent('jti', 'j1', 1, SHORT_TTL)).toBe(true)
      h.elapse(SHORT_TTL)
      await expectGone('jti', 'j1')
      expect(await store.putIfAbsent('jti', 'j1', 2, LONG_TTL)).toBe(true)
      expect(await store.get('jti', 'j1')).toBe(2)
    })

    it('of 20 concurrent putIfAbsent calls exactly one wins', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.putIfAbsent('jti', 'race', i, LONG_TTL)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await store.get('jti', 'race')).toBe(results.indexOf(true))
    })

    it('take returns the value once, then undefined', async () => {
      await store.put('code', 'c1', { grant: 'g' }, LONG_TTL)
      expect(await store.take('code', 'c1')).toEqual({ grant: 'g' })
      expect(await store.take('code', 'c1')).toBeUndefined()
      expect(await store.get('code', 'c1')).toBeUndefined()
      expect(await store.take('code', 'never')).toBeUndefined()
    })

    it('of 20 concurrent takes of one key exactly one gets the value', async () => {
      await store.put('code', 'c1', { grant: 'g' }, LONG_TTL)
      const results = await Promise.all(Array.from({ length: 20 }, () => store.take('code', 'c1')))
      expect(results.filter((r) => r !== undefined)).toEqual([{ grant: 'g' }])
    })

    it('delete removes a key and ignores a missing one', async () => {
      await store.put('code', 'c1', 1, LONG_TTL)
      await store.put('code', 'c2', 2, LONG_TTL)
      await store.delete('code', 'c1')
      await store.delete('code', 'missing')
      expect(await store.get('code', 'c1')).toBeUndefined()
      expect(await store.get('code', 'c2')).toBe(2)
    })

    it('deleteGroup removes every member of the group and nothing else', async () => {
      await store.put('access', 'a1', 'access', LONG_TTL)
      await store.put('refresh', 'r1', 'refresh', LONG_TTL)
      await store.put('upstream', 'u1', 'upstream', LONG_TTL)
      await store.put('access', 'other', 'other grant', LONG_TTL)
      await store.put('access', 'loose', 'in no group', LONG_TTL)
      await store.addToGroup('grant-1', 'access', 'a1', LONG_TTL)
      await store.addToGroup('grant-1', 'refresh', 'r1', LONG_TTL)
      await store.addToGroup('grant-1', 'upstream', 'u1', LONG_TTL)
      await store.addToGroup('grant-1', 'upstream', 'u1', LONG_TTL) // idempotent
      await store.addToGroup('grant-2', 'access', 'other', LONG_TTL)

      await store.deleteGroup('grant-1')

      expect(await store.get('access', 'a1')).toBeUndefined()
      expect(await store.get('refresh', 'r1')).toBeUndefined()
      expect(await store.get('upstream', 'u1')).toBeUndefined()
      expect(await store.get('access', 'other')).toBe('other grant')
      expect(await store.get('access', 'loose')).toBe('in no group')
      // The group itself is gone: a value written later under a former member's id survives.
      await store.put('access', 'a1', 'new', LONG_TTL)
      await store.deleteGroup('grant-1')
      expect(await store.get('access', 'a1')).toBe('new')
      await store.deleteGroup('never-existed')
    })

    it('a group lives as long as its longest-lived member', async () => {
      await store.put('refresh', 'long', 'refresh', LONG_TTL)
      await store.put('access', 'short', 'access', SHORT_TTL)
      // Long member first: the short one added later must not shorten the group.
      await store.addToGroup('grant-1', 'refresh', 'long', LONG_TTL)
      await store.addToGroup('grant-1', 'access', 'short', SHORT_TTL)
      h.elapse(SHORT_TTL)
      await expectGone('access', 'short')
      await store.deleteGroup('grant-1')
      expect(await store.get('refresh', 'long')).toBeUndefined()
    })

    it('increment counts per key within a window', async () => {
      expect(await store.increment('rate', 'ip-1', LONG_TTL)).toBe(1)
      expect(await store.increment('rate', 'ip-1', LONG_TTL)).toBe(2)
      expect(await store.increment('rate', 'ip-2', LONG_TTL)).toBe(1)
      expect(await store.increment('rate', 'ip-1', LONG_TTL)).toBe(3)
      const counts = await Promise.all(
        Array.from({ length: 10 }, () => store.increment('rate', 'burst', LONG_TTL)),
      )
      expect([...counts].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    })

    it('count reads a counter without counting, 0 when absent or expired', async () => {
      expect(await store.count('rate', 'ip-9')).toBe(0)
      await store.increment('rate', 'ip-9', SHORT_TTL)
      await store.increment('rate', 'ip-9', SHORT_TTL)
      expect(await store.count('rate', 'ip-9')).toBe(2)
      expect(await store.count('rate', 'ip-9')).toBe(2)
      h.elapse(SHORT_TTL)
      await vi.waitFor(async () => expect(await store.count('rate', 'ip-9')).toBe(0), POLL)
    })

    it('increment starts again at 1 in a new window', async () => {
      expect(await store.increment('rate', 'ip-1', SHORT_TTL)).toBe(1)
      h.elapse(SHORT_TTL)
      // Each poll counts one more hit until the window closes; the first hit after it is 1.
      await vi.waitFor(
        async () => expect(await store.increment('rate', 'ip-1', SHORT_TTL)).toBe(1),
        POLL,
      )
    })

    it('rejects ambiguous kinds and non-positive TTLs', async () => {
      await expect(store.put('a:b', 'c', 1, LONG_TTL)).rejects.toBeInstanceOf(TypeError)
      await expect(store.put('group', 'c', 1, LONG_TTL)).rejects.toBeInstanceOf(TypeError)
      await expect(store.get('', 'c')).rejects.toBeInstanceOf(TypeError)
      await expect(store.get('code', '')).rejects.toBeInstanceOf(TypeError)
      await expect(store.put('code', 'c', 1, 0)).rejects.toBeInstanceOf(RangeError)
      await expect(store.increment('rate', 'c', Number.NaN)).rejects.toBeInstanceOf(RangeError)
      await expect(store.addToGroup('g', 'code', 'c', -1)).rejects.toBeInstanceOf(RangeError)
    })

    it('answers ping while open and reports StorageUnavailableError once closed', async () => {
      await store.ping()
      await store.close()
      await expect(store.ping()).rejects.toBeInstanceOf(StorageUnavailableError)
      await expect(store.get('code', 'c1')).rejects.toBeInstanceOf(StorageUnavailableError)
      await expect(store.put('code', 'c1', 1, LONG_TTL)).rejects.toBeInstanceOf(
        StorageUnavailableError,
      )
      await store.close() // idempotent
    })
  })
}

storeContract('memory', () => {
  let t = 1_700_000_000_000
  return { store: createMemoryStore({ now: () => t }), elapse: (ms) => void (t += ms) }
})

describe('redis-server', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedis()
  })
  afterAll(async () => {
    await server?.close()
  })

  storeContract('redis', () => ({
    // A fresh prefix per test: one server, no cross-test leftovers, no FLUSHALL needed.
    store: createRedisStore({
      url: server.url,
      keyPrefix: `test:${randomUUID()}:`,
      logger: createLogger({ level: 'silent' }),
    }),
    elapse: () => {},
  }))
  storeContract('sealed redis', () => {
    const keyPrefix = `test:${randomUUID()}:`
    const logger = createLogger({ level: 'silent' })
    const redis = createRedisStore({ url: server.url, keyPrefix, logger })
    const sealer = createSealer(randomBytes(32))
    return { store: createSealedStore({ store: redis, sealer, logger, keyPrefix }), elapse: () => {} }
  })
})
