// Authorization-server records at rest: sealed with AAD = their Redis key, checked against a real
// redis-server by reading and rewriting the raw bytes the way someone with Redis access could.
import { randomBytes, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import {
  createRedisStore,
  createSealedStore,
  createSealer,
  type Store,
} from '../../../src/storage/index.js'
import { startRedis, type RedisServer } from '../../support/redis.js'

const TTL = 60_000
const RECORD = {
  clientId: 'client-canary',
  redirectUri: 'https://app.example/cb',
  legs: { corp: { codeVerifier: 'verifier-canary', nonce: 'nonce-canary' } },
}

describe('sealed store on redis-server', () => {
  let server: RedisServer
  let raw: Redis
  let prefix: string
  let store: Store
  let lines: string[]
  beforeAll(async () => {
    server = await startRedis()
    raw = new Redis(server.url)
  })
  afterAll(async () => {
    await raw?.quit()
    await server?.close()
  })
  beforeEach(() => {
    prefix = `t:${randomUUID()}:`
    lines = []
    const destination = { write: (l: string) => void lines.push(l) }
    const logger = createLogger({ level: 'trace', destination })
    const redis = createRedisStore({ url: server.url, keyPrefix: prefix, logger })
    const sealer = createSealer(randomBytes(32))
    store = createSealedStore({ store: redis, sealer, logger, keyPrefix: prefix })
    return () => store.close()
  })
  const warnings = () =>
    lines
      .map((l) => JSON.parse(l) as { level: number; msg: string; kind?: string })
      .filter((l) => l.level === 40)

  it('the raw bytes in Redis hold no plaintext field name or value', async () => {
    await store.put('pending-authorization', 'p1', RECORD, TTL)
    const bytes = await raw.get(`${prefix}pending-authorization:p1`)
    expect(bytes).toMatch(/^"v1\.[\w-]+\.[\w-]+\.[\w-]+"$/)
    const plain = ['clientId', 'client-canary', 'app.example', 'codeVerifier', 'verifier-canary']
    for (const text of plain) expect(bytes).not.toContain(text)
    expect(await store.get('pending-authorization', 'p1')).toEqual(RECORD)
  })

  it('a record copied to another key does not open there (absent + warn, no crash)', async () => {
    await store.put('grant', 'victim', RECORD, TTL)
    const bytes = await raw.get(`${prefix}grant:victim`)
    await raw.set(`${prefix}grant:attacker`, bytes ?? '', 'PX', TTL)
    await raw.set(`${prefix}client:victim`, bytes ?? '', 'PX', TTL)
    expect(await store.get('grant', 'attacker')).toBeUndefined()
    expect(await store.take('grant', 'attacker')).toBeUndefined()
    expect(await store.get('client', 'victim')).toBeUndefined()
    expect(await store.get('grant', 'victim')).toEqual(RECORD)
    expect(warnings()).toHaveLength(3)
    expect(warnings()[0]?.msg).toMatch(/failed authentication/)
    expect(lines.join('')).not.toContain('attacker')
  })

  it('a record under another key prefix (another deployment) does not open', async () => {
    const other = `t:${randomUUID()}:`
    const logger = createLogger({ level: 'silent' })
    // Same sealer key: only the AAD tells the two deployments apart.
    const sealer = createSealer(randomBytes(32))
    const open = (keyPrefix: string) =>
      createSealedStore({
        store: createRedisStore({ url: server.url, keyPrefix, logger }),
        sealer,
        logger,
        keyPrefix,
      })
    const a = open(prefix)
    const b = open(other)
    await a.put('grant', 'g', RECORD, TTL)
    await raw.set(`${other}grant:g`, (await raw.get(`${prefix}grant:g`)) ?? '', 'PX', TTL)
    expect(await a.get('grant', 'g')).toEqual(RECORD)
    expect(await b.get('grant', 'g')).toBeUndefined()
    await a.close()
    await b.close()
  })

  it('a flipped bit, plain JSON or a non-string value reads as absent, with a warning', async () => {
    await store.put('grant', 'g', RECORD, TTL)
    const bytes = (await raw.get(`${prefix}grant:g`)) ?? ''
    const sealed = JSON.parse(bytes) as string
    const parts = sealed.split('.')
    const body = Buffer.from(parts[3] ?? '', 'base64url')
    body[0] = (body[0] ?? 0) ^ 0x01
    parts[3] = body.toString('base64url')
    await raw.set(`${prefix}grant:g`, JSON.stringify(parts.join('.')), 'PX', TTL)
    expect(await store.get('grant', 'g')).toBeUndefined()
    // An attacker writing plain JSON (what the records were before sealing) gets nowhere either.
    await raw.set(`${prefix}grant:plain`, JSON.stringify(RECORD), 'PX', TTL)
    expect(await store.take('grant', 'plain')).toBeUndefined()
    await raw.set(`${prefix}grant:num`, '42', 'PX', TTL)
    expect(await store.get('grant', 'num')).toBeUndefined()
    expect(warnings().map((w) => w.kind)).toEqual(['grant', 'grant', 'grant'])
  })
})
