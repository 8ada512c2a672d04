import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Logger } from '../log/index.js'
import {
  createEntriesFile,
  createSealer,
  loadOrCreateSealingKey,
  type Sealer,
} from '../storage/index.js'
import { dcrKeyId } from './cache-key.js'
import { DcrError } from './errors.js'
import type { DcrCredentials, DcrCredentialStore, DcrKey } from './types.js'

/** At rest: everything in clear except the two secrets, sealed together (AES-256-GCM). */
interface StoredRecord {
  credentials: Omit<DcrCredentials, 'clientSecret' | 'registrationAccessToken'>
  sealed: string
}

function toRecord(creds: DcrCredentials, sealer: Sealer): StoredRecord {
  const { clientSecret, registrationAccessToken, ...rest } = creds
  return {
    credentials: rest,
    sealed: sealer.seal(JSON.stringify({ clientSecret, registrationAccessToken })),
  }
}

/** Throws when the record was sealed under another key or tampered with. */
function fromRecord(record: StoredRecord, sealer: Sealer): DcrCredentials {
  const secrets = JSON.parse(sealer.open(record.sealed)) as Pick<
    DcrCredentials,
    'clientSecret' | 'registrationAccessToken'
  >
  const creds: DcrCredentials = { ...record.credentials }
  if (secrets.clientSecret) creds.clientSecret = secrets.clientSecret
  if (secrets.registrationAccessToken)
    creds.registrationAccessToken = secrets.registrationAccessToken
  return creds
}

function isRecord(v: unknown): v is StoredRecord {
  const r = v as StoredRecord | undefined
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.sealed === 'string' &&
    typeof r.credentials?.clientId === 'string' &&
    typeof r.credentials?.key?.issuer === 'string'
  )
}

/** In-process locks: one holder per key until released or `ttlMs` passes. */
function createLocalLocks() {
  const held = new Map<string, number>()
  return async (key: DcrKey, ttlMs: number) => {
    const id = dcrKeyId(key)
    const until = held.get(id)
    if (until !== undefined && until > Date.now()) return undefined
    const mine = Date.now() + ttlMs
    held.set(id, mine)
    return async () => {
      if (held.get(id) === mine) held.delete(id)
    }
  }
}

/** Process lifetime only: every restart registers again. */
export function createMemoryDcrStore(): DcrCredentialStore {
  const map = new Map<string, DcrCredentials>()
  const copy = (c: DcrCredentials) => structuredClone(c)
  return {
    type: 'memory',
    async get(key) {
      const c = map.get(dcrKeyId(key))
      return c ? copy(c) : undefined
    },
    async put(creds) {
      map.set(dcrKeyId(creds.key), copy(creds))
    },
    async delete(key) {
      map.delete(dcrKeyId(key))
    },
    async list() {
      return [...map.values()].map(copy)
    },
    lock: createLocalLocks(),
    async close() {},
  }
}

export const DCR_FILE = 'dcr-credentials.json'
export const DCR_KEY_FILE = 'dcr-credentials.key'

export interface FileDcrStoreOptions {
  dataDir: string
  /** 32-byte sealing key (storage.encryptionKey); absent: one is generated beside the file. */
  key?: Buffer
  logger: Logger
}

/**
 * One JSON file under dataDir (0600, written to a temporary file and renamed into place), secrets
 * sealed. A corrupt file, or entries sealed under another key, are ignored with a warning: the
 * upstream registers again and the next write replaces them.
 */
export async function createFileDcrStore(
  options: FileDcrStoreOptions,
): Promise<DcrCredentialStore> {
  const { dataDir, logger } = options
  const file = join(dataDir, DCR_FILE)
  const log = logger.child({ component: 'dcr.store', file })
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const sealer = createSealer(
    options.key ?? (await loadOrCreateKey(join(dataDir, DCR_KEY_FILE), log)),
  )
  let warnedCorrupt = false
  const entriesFile = createEntriesFile<unknown>(file, {
    onCorrupt() {
      if (warnedCorrupt) return
      warnedCorrupt = true
      log.warn(
        `dcr cache file ${file} is corrupt; ignoring it: upstreams register again and the file is rewritten`,
      )
    },
    onWritten() {
      warnedCorrupt = false
    },
    readError: (err) => new DcrError('store', `cannot read ${file} (${err.code ?? 'error'})`),
  })
  const readAll = () => entriesFile.read()

  function open(id: string, value: unknown): DcrCredentials | undefined {
    if (!isRecord(value)) return undefined
    try {
      return fromRecord(value, sealer)
    } catch {
      log.warn(
        {
          upstream: value.credentials.upstream,
          issuer: value.credentials.key.issuer,
          entry: id.slice(0, 12),
        },
        `dcr cache entry for upstream ${value.credentials.upstream} cannot be decrypted (sealed under another key, or tampered with); ignoring it and registering again`,
      )
      return undefined
    }
  }

  return {
    type: 'file',
    async get(key) {
      const id = dcrKeyId(key)
      return open(id, (await readAll())[id])
    },
    put(creds) {
      return entriesFile.update((entries) => {
        entries[dcrKeyId(creds.key)] = toRecord(creds, sealer)
      })
    },
    delete(key) {
      return entriesFile.update((entries) => {
        delete entries[dcrKeyId(key)]
      })
    },
    async list() {
      const entries = await readAll()
      return Object.entries(entries).flatMap(([id, v]) => open(id, v) ?? [])
    },
    lock: createLocalLocks(),
    close: () => entriesFile.settled(),
  }
}

/** The sealing key of the file store when no encryptionKey is configured: generated once (0600). */
async function loadOrCreateKey(path: string, logger: Logger): Promise<Buffer> {
  try {
    return await loadOrCreateSealingKey(path, () =>
      logger.warn({ file: path }, 'dcr cache key file is readable by others; chmod 600 it'),
    )
  } catch (err) {
    throw new DcrError('store', (err as Error).message)
  }
}

export interface RedisDcrStoreOptions {
  url: string
  keyPrefix: string
  /** storage.encryptionKey: required with Redis storage. */
  key: Buffer
  logger: Logger
}

// Release only our own lock: compare the holder token and delete in one step.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

/**
 * Registrations in Redis, shared by every replica: `<prefix>dcr:<key id>` (sealed record) and the
 * set `<prefix>dcr:index` for `list`. No TTL: a registration lives until forgotten. The renewal
 * lock is `SET NX PX` with a random holder token.
 */
export function createRedisDcrStore(options: RedisDcrStoreOptions): DcrCredentialStore {
  const sealer = createSealer(options.key)
  const prefix = `${options.keyPrefix}dcr:`
  const index = `${prefix}index`
  const client = new Redis(options.url, {
    lazyConnect: true,
    // Fail fast while Redis is down: the lifecycle marks the upstream unavailable and retries.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    commandTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  })
  // Connection errors reach callers as rejected commands; this only keeps them off the process.
  client.on('error', () => undefined)
  const connecting = client.connect().catch(() => undefined)
  const run = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    await connecting
    try {
      return await fn()
    } catch (err) {
      // ioredis messages can carry arguments; only the class of failure leaves this module.
      const reason =
        err instanceof Error &&
        /ECONNREFUSED|closed|timed out|Stream isn't writeable/i.test(err.message)
          ? 'Redis is unreachable'
          : 'Redis command failed'
      throw new DcrError('store', `cannot ${what} the registration cache: ${reason}`)
    }
  }
  const keyOf = (key: DcrKey) => `${prefix}${dcrKeyId(key)}`
  const parse = (text: string | null): DcrCredentials | undefined => {
    if (!text) return undefined
    try {
      const value: unknown = JSON.parse(text)
      return isRecord(value) ? fromRecord(value, sealer) : undefined
    } catch {
      options.logger.warn(
        { component: 'dcr.store' },
        'dcr cache entry in Redis cannot be read or decrypted (another encryptionKey?); ignoring it and registering again',
      )
      return undefined
    }
  }
  return {
    type: 'redis',
    get: (key) => run('read', async () => parse(await client.get(keyOf(key)))),
    put: (creds) =>
      run('write', async () => {
        await client
          .multi()
          .set(keyOf(creds.key), JSON.stringify(toRecord(creds, sealer)))
          .sadd(index, keyOf(creds.key))
          .exec()
      }),
    delete: (key) =>
      run('write', async () => {
        await client.multi().del(keyOf(key)).srem(index, keyOf(key)).exec()
      }),
    list: () =>
      run('read', async () => {
        const keys = await client.smembers(index)
        if (keys.length === 0) return []
        const values = await client.mget(...keys)
        return values.flatMap((v) => parse(v) ?? [])
      }),
    lock: (key, ttlMs) =>
      run('lock', async () => {
        const lockKey = `${prefix}lock:${dcrKeyId(key)}`
        const token = randomBytes(16).toString('hex')
        const ok = await client.set(lockKey, token, 'PX', ttlMs, 'NX')
        if (ok !== 'OK') return undefined
        return async () => {
          await client.eval(RELEASE, 1, lockKey, token).catch(() => undefined)
        }
      }),
    async close() {
      await connecting
      client.disconnect()
    },
  }
}
