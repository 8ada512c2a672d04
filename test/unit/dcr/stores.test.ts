import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createFileDcrStore,
  createMemoryDcrStore,
  createRedisDcrStore,
  DCR_FILE,
  DCR_KEY_FILE,
  scopesHash,
  type DcrCredentials,
  type DcrCredentialStore,
} from '../../../src/dcr/index.js'
import { startRedis, type RedisServer } from '../../support/redis.js'
import { memoryLogger } from '../../support/vmcp.js'

const SECRET = 'client-secret-canary-0123456789'
const RAT = 'registration-token-canary-0123456789'

function creds(issuer = 'https://as.example', extra: Partial<DcrCredentials> = {}): DcrCredentials {
  return {
    key: {
      issuer,
      redirectUri: 'https://vmcp.example/oauth/callback',
      scopesHash: scopesHash(['mcp']),
    },
    upstream: 'datadog',
    clientId: `client-of-${issuer}`,
    clientSecret: SECRET,
    clientSecretExpiresAt: 2_000_000_000,
    registrationAccessToken: RAT,
    registrationClientUri: `${issuer}/reg/1`,
    tokenEndpointAuthMethod: 'client_secret_post',
    server: {
      issuer,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      discovered: true,
    },
    registered: {
      redirect_uris: ['https://vmcp.example/oauth/callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    createdAt: 1_700_000_000_000,
    ...extra,
  }
}

/** The contract every DcrCredentialStore keeps. */
function contract(name: string, make: () => Promise<DcrCredentialStore>) {
  describe(`${name} store contract`, () => {
    it('get/put/delete/list round-trip every field, overwriting by key', async () => {
      const store = await make()
      const a = creds('https://a.example')
      const b = creds('https://b.example')
      expect(await store.get(a.key)).toBeUndefined()
      await store.put(a)
      await store.put(b)
      expect(await store.get(a.key)).toEqual(a)
      const rotated = { ...a, clientSecret: 'rotated-secret' }
      await store.put(rotated)
      expect(await store.get(a.key)).toEqual(rotated)
      expect((await store.list()).map((c) => c.key.issuer).sort()).toEqual([
        'https://a.example',
        'https://b.example',
      ])
      await store.delete(a.key)
      expect(await store.get(a.key)).toBeUndefined()
      expect(await store.list()).toHaveLength(1)
      await store.delete(b.key)
      await store.close()
    })

    it('a returned value is a copy: changing it changes nothing stored', async () => {
      const store = await make()
      const a = creds('https://copy.example')
      await store.put(a)
      const got = await store.get(a.key)
      if (!got) throw new Error('missing')
      got.clientSecret = 'changed'
      a.clientSecret = 'changed too'
      expect((await store.get(a.key))?.clientSecret).toBe(SECRET)
      await store.delete(a.key)
      await store.close()
    })

    it('one lock holder per key until released', async () => {
      const store = await make()
      const { key } = creds('https://lock.example')
      const release = await store.lock(key, 10_000)
      expect(release).toBeTypeOf('function')
      expect(await store.lock(key, 10_000)).toBeUndefined()
      await release?.()
      const again = await store.lock(key, 10_000)
      expect(again).toBeTypeOf('function')
      await again?.()
      await store.close()
    })
  })
}

contract('memory', async () => createMemoryDcrStore())

const dir = () => mkdtempSync(join(tmpdir(), 'vmcp-dcr-store-'))
const sharedDir = dir()
contract('file', async () =>
  createFileDcrStore({ dataDir: sharedDir, logger: memoryLogger().logger }),
)

describe('file store', () => {
  it('one 0600 file with the secrets sealed, a key generated once (0600) beside it, and a restart reads it back', async () => {
    const dataDir = dir()
    const store = await createFileDcrStore({ dataDir, logger: memoryLogger().logger })
    await store.put(creds())
    const file = join(dataDir, DCR_FILE)
    const text = readFileSync(file, 'utf8')
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain(RAT)
    expect(text).toContain('client-of-https://as.example')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(join(dataDir, DCR_KEY_FILE)).mode & 0o777).toBe(0o600)
    const key = readFileSync(join(dataDir, DCR_KEY_FILE), 'utf8')
    // A second process on the same dataDir: same key, same registration.
    const restarted = await createFileDcrStore({ dataDir, logger: memoryLogger().logger })
    expect(await restarted.get(creds().key)).toEqual(creds())
    expect(readFileSync(join(dataDir, DCR_KEY_FILE), 'utf8')).toBe(key)
  })

  it('uses storage.encryptionKey when given, and then writes no key file', async () => {
    const dataDir = dir()
    const store = await createFileDcrStore({
      dataDir,
      key: Buffer.alloc(32, 7),
      logger: memoryLogger().logger,
    })
    await store.put(creds())
    expect(() => statSync(join(dataDir, DCR_KEY_FILE))).toThrow()
    expect(await store.get(creds().key)).toEqual(creds())
  })

  it('a corrupt file is a warning and a miss, never a crash; the next write replaces it', async () => {
    const dataDir = dir()
    writeFileSync(join(dataDir, DCR_FILE), '{"version": 1, "entries": ', { mode: 0o600 })
    const { logger, logs } = memoryLogger()
    const store = await createFileDcrStore({ dataDir, logger })
    expect(await store.get(creds().key)).toBeUndefined()
    expect(await store.list()).toEqual([])
    const warnings = logs
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((r) => r.level === 40)
    expect(warnings.map((w) => w.msg)).toEqual([
      `dcr cache file ${join(dataDir, DCR_FILE)} is corrupt; ignoring it: upstreams register again and the file is rewritten`,
    ])
    await store.put(creds())
    expect(await store.get(creds().key)).toEqual(creds())
  })

  it('entries sealed under another key are a warning and a miss', async () => {
    const dataDir = dir()
    const first = await createFileDcrStore({
      dataDir,
      key: Buffer.alloc(32, 1),
      logger: memoryLogger().logger,
    })
    await first.put(creds())
    const { logger, logs } = memoryLogger()
    const second = await createFileDcrStore({ dataDir, key: Buffer.alloc(32, 2), logger })
    expect(await second.get(creds().key)).toBeUndefined()
    const msgs = logs.map((l) => (JSON.parse(l) as { msg: string }).msg)
    expect(msgs).toContain(
      'dcr cache entry for upstream datadog cannot be decrypted (sealed under another key, or tampered with); ignoring it and registering again',
    )
    expect(logs.join('\n')).not.toContain(SECRET)
  })
})

describe('redis store', () => {
  let redis: RedisServer
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await redis?.close()
  })
  const make = async () =>
    createRedisDcrStore({
      url: redis.url,
      keyPrefix: 't:',
      key: Buffer.alloc(32, 3),
      logger: memoryLogger().logger,
    })
  contract('redis', make)

  it('shares registrations between replicas and keeps the secrets sealed in Redis', async () => {
    const a = await make()
    const b = await make()
    await a.put(creds('https://shared.example'))
    expect(await b.get(creds('https://shared.example').key)).toEqual(
      creds('https://shared.example'),
    )
    // The lock is shared too: one renewal across replicas.
    const release = await a.lock(creds('https://shared.example').key, 10_000)
    expect(await b.lock(creds('https://shared.example').key, 10_000)).toBeUndefined()
    await release?.()
    const { Redis } = await import('ioredis')
    const raw = new Redis(redis.url)
    const keys = await raw.keys('t:dcr:*')
    const values = await Promise.all(
      keys.filter((k) => !k.endsWith('index')).map((k) => raw.get(k)),
    )
    expect(values.join('\n')).not.toContain(SECRET)
    expect(values.join('\n')).not.toContain(RAT)
    raw.disconnect()
    await a.close()
    await b.close()
  })

  it('Redis down: operations reject with a DcrError naming the store, never the URL', async () => {
    const store = createRedisDcrStore({
      url: 'redis://:hunter2@127.0.0.1:1',
      keyPrefix: 't:',
      key: Buffer.alloc(32, 3),
      logger: memoryLogger().logger,
    })
    await expect(store.get(creds().key)).rejects.toMatchObject({
      step: 'store',
      message: 'cannot read the registration cache: Redis is unreachable',
    })
    await store.close()
  })
})
