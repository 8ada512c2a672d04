import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import { createStore, hashId } from '../../../src/storage/index.js'
import { startRedis, type RedisServer } from '../../support/redis.js'

const logger = createLogger({ level: 'silent' })

describe('hashId', () => {
  it('is SHA-256 hex (FIPS 180-2 test vector "abc")', () => {
    expect(hashId('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(hashId('abc')).toBe(hashId('abc'))
    expect(hashId('abd')).not.toBe(hashId('abc'))
  })
})

describe('createStore', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedis()
  })
  afterAll(async () => {
    await server?.close()
  })

  it('builds a memory store', async () => {
    const store = createStore({ type: 'memory' }, logger)
    expect(store.type).toBe('memory')
    await store.ping()
    await store.close()
  })

  it('builds a Redis store from the redis settings', async () => {
    const redis = { url: server.url, keyPrefix: 'cs:' }
    const store = createStore({ type: 'redis', redis }, logger)
    expect(store.type).toBe('redis')
    await store.ping()
    await store.close()
  })

  it('refuses redis without redis settings', () => {
    expect(() => createStore({ type: 'redis' }, logger)).toThrow(TypeError)
  })
})
