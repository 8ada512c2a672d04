// Redis-only behaviour: durability across clients, server restarts and outages, credential hygiene.
import { randomUUID } from 'node:crypto'
import { inspect } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createLogger, type Logger } from '../../../src/log/index.js'
import {
  createRedisStore,
  StorageUnavailableError,
  type Store,
} from '../../../src/storage/index.js'
import { freePort } from '../../support/http.js'
import { redisCommand, startRedis, type RedisServer } from '../../support/redis.js'
import { EVENTUALLY } from '../../support/wait.js'

const TTL = 60_000
const CANARY = 's3cret-canary'
const POLL = EVENTUALLY

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = []
  const destination = { write: (line: string) => void lines.push(line) }
  const logger = createLogger({ level: 'trace', destination })
  return { logger, text: () => lines.join('') }
}

// startRedis() waits for an unauthenticated PING, so `--requirepass` cannot be passed at spawn:
// the password is switched on once the server is up (and again after each restart).
async function requirePassword(server: RedisServer, password: string) {
  expect(await redisCommand(server.port, `CONFIG SET requirepass ${password}`)).toBe('+OK')
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(StorageUnavailableError)
  return err as Error
}

function expectNoCanary(err: Error, logs: string) {
  expect(err.message).not.toContain(CANARY)
  expect(inspect(err, { depth: 10 })).not.toContain(CANARY)
  expect(logs).not.toContain(CANARY)
}

describe('redis store', () => {
  let server: RedisServer
  const stores: Store[] = []
  const silent = createLogger({ level: 'silent' })
  const open = (keyPrefix: string, url = server.url, logger = silent) => {
    const store = createRedisStore({ url, keyPrefix, logger })
    stores.push(store)
    return store
  }

  beforeAll(async () => {
    server = await startRedis()
  })
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
  })
  afterAll(async () => {
    await server?.close()
  })

  it('isolates stores with different key prefixes', async () => {
    const run = randomUUID()
    const a = open(`a:${run}:`)
    const b = open(`b:${run}:`)
    await a.put('code', 'same', 'from a', TTL)
    expect(await b.get('code', 'same')).toBeUndefined()
    await b.put('code', 'same', 'from b', TTL)
    await a.addToGroup('grant', 'code', 'same', TTL)
    await b.addToGroup('grant', 'code', 'same', TTL)
    expect(await a.increment('rate', 'x', TTL)).toBe(1)
    expect(await b.increment('rate', 'x', TTL)).toBe(1)

    await b.deleteGroup('grant')
    expect(await b.get('code', 'same')).toBeUndefined()
    expect(await a.get('code', 'same')).toBe('from a')
    expect(await a.take('code', 'same')).toBe('from a')
    expect(await b.take('code', 'same')).toBeUndefined()
  })

  it('writes every key with its prefix and a TTL', async () => {
    const prefix = `ttl:${randomUUID()}:`
    const store = open(prefix)
    await store.put('code', 'c1', 1, TTL)
    await store.putIfAbsent('code', 'c2', 2, TTL)
    await store.addToGroup('g1', 'code', 'c1', TTL)
    await store.increment('rate', 'r1', TTL)
    for (const key of ['code:c1', 'code:c2', 'group:g1', 'rate:r1']) {
      const reply = await redisCommand(server.port, `PTTL ${prefix}${key}`)
      const ms = Number(reply.slice(1))
      expect(ms, key).toBeGreaterThan(0)
      expect(ms, key).toBeLessThanOrEqual(TTL)
    }
  })

  it('keeps data for a new client (the store outlives the process)', async () => {
    const prefix = `durable:${randomUUID()}:`
    const first = open(prefix)
    await first.put('client', 'c1', { redirectUris: ['https://app.example/cb'] }, TTL)
    await first.close()
    const second = open(prefix)
    expect(await second.get('client', 'c1')).toEqual({ redirectUris: ['https://app.example/cb'] })
  })

  it('of 20 takes over 5 connections exactly one gets the value', async () => {
    const prefix = `race:${randomUUID()}:`
    const clients = Array.from({ length: 5 }, () => open(prefix))
    await Promise.all(clients.map((c) => c.ping()))
    await clients[0]!.put('code', 'c1', 'once', TTL)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => clients[i % 5]!.take('code', 'c1')),
    )
    expect(results.filter((r) => r !== undefined)).toEqual(['once'])
  })

  it('loses values when the server restarts without its data, and keeps working', async () => {
    const store = open(`restart:${randomUUID()}:`)
    await store.put('code', 'c1', 1, TTL)
    await server.restart({ keepData: false })
    await vi.waitFor(async () => expect(await store.get('code', 'c1')).toBeUndefined(), POLL)
    await store.put('code', 'c2', 2, TTL)
    expect(await store.get('code', 'c2')).toBe(2)
  })

  it('rejects with StorageUnavailableError while Redis is down, recovers when back', async () => {
    const down = await startRedis()
    try {
      await requirePassword(down, CANARY)
      const logs = captureLogger()
      const url = `redis://:${CANARY}@127.0.0.1:${down.port}`
      const store = open(`outage:${randomUUID()}:`, url, logs.logger)
      await store.put('code', 'c1', 1, TTL)

      process.kill(down.pid!, 'SIGKILL')
      await vi.waitFor(() => expect(redisCommand(down.port, 'PING')).rejects.toThrow(), POLL)

      for (const op of [
        () => store.get('code', 'c1'),
        () => store.put('code', 'c2', 2, TTL),
        () => store.take('code', 'c1'),
        () => store.addToGroup('g', 'code', 'c1', TTL),
        () => store.deleteGroup('g'),
        () => store.increment('rate', 'r', TTL),
        () => store.ping(),
      ]) {
        const err = await rejection(op())
        expect(err.message).toContain(`redis at 127.0.0.1:${down.port}: not connected`)
        expectNoCanary(err, logs.text())
      }

      await down.restart()
      await requirePassword(down, CANARY)
      await vi.waitFor(() => store.ping(), POLL)
      await store.put('code', 'c3', 3, TTL)
      expect(await store.get('code', 'c3')).toBe(3)
      expect(logs.text()).toContain('redis connection lost')
      expect(logs.text()).toContain('redis available again')
      expect(logs.text()).toContain(`127.0.0.1:${down.port}`)
      expect(logs.text()).not.toContain(CANARY)
    } finally {
      await down.close()
    }
  })

  it('fails fast when Redis is down at startup, naming host:port only', async () => {
    const port = await freePort()
    const logs = captureLogger()
    const store = open('startup:', `redis://vmcp:${CANARY}@127.0.0.1:${port}/0`, logs.logger)
    const err = await rejection(store.ping())
    expect(err.message).toMatch(`storage unavailable: redis at 127.0.0.1:${port}: not connected`)
    await rejection(store.get('code', 'c1'))
    expectNoCanary(err, logs.text())
    expect(logs.text()).toContain('redis unavailable at startup')
  })

  it('maps a rejected password to StorageUnavailableError without echoing it', async () => {
    const locked = await startRedis()
    try {
      await requirePassword(locked, 'the-right-one')
      const logs = captureLogger()
      const store = open('auth:', `redis://:${CANARY}@127.0.0.1:${locked.port}`, logs.logger)
      const err = await rejection(store.ping())
      expect(err.message).toContain('WRONGPASS')
      expectNoCanary(err, logs.text())
    } finally {
      await locked.close()
    }
  })

  it('rejects a malformed URL without echoing it', () => {
    expect(() => open('x:', `http://:${CANARY}@127.0.0.1:1`)).toThrow(/redis:\/\/ or rediss:\/\//)
    try {
      open('x:', `redis://:${CANARY}@[bad`)
      expect.unreachable()
    } catch (err) {
      expect(String((err as Error).message)).not.toContain(CANARY)
    }
  })
})
