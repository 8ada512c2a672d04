import { Redis } from 'ioredis'
import type { Logger } from '../log/index.js'
import { checkId, checkKind, checkTtl, decodeValue, encodeValue } from './key-scheme.js'
import { StorageUnavailableError, type Store } from './types.js'

export interface RedisStoreOptions {
  /** `redis://` or `rediss://`, credentials included; never logged or echoed in errors. */
  url: string
  /** Prepended to every key, e.g. `vmcp:`; lets several deployments share one Redis. */
  keyPrefix: string
  logger: Logger
  /** TCP + handshake budget per connection attempt (default 3000 ms). */
  connectTimeoutMs?: number
  /** A command with no reply after this long fails as unavailable (default 2000 ms). */
  commandTimeoutMs?: number
}

// Reconnect backoff: fast first retries, capped so a recovered Redis is picked up within ~2 s.
const MAX_BACKOFF_MS = 2000

// Server replies that mean "cannot serve now" rather than "bad command": they become
// StorageUnavailableError (503) like a refused connection. Anything else is a bug on our side.
const UNAVAILABLE_REPLIES = new Set([
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'READONLY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'MISCONF',
  'OOM',
  'NOAUTH',
  'WRONGPASS',
  'NOPERM',
])

// SADD then extend (never shorten) the set's TTL to the longest member's, in one atomic step.
const ADD_TO_GROUP = `
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`

// Atomic revoke-by-grant: no member can be added between reading the set and deleting it.
// Members are full keys (prefix included), so they are deleted exactly as they were written.
const DELETE_GROUP = `
local members = redis.call('SMEMBERS', KEYS[1])
for _, key in ipairs(members) do redis.call('DEL', key) end
redis.call('DEL', KEYS[1])
return #members`

// Fixed window: the first hit opens the window. The PTTL check repairs a counter that somehow
// lost its TTL, which would otherwise count forever.
const INCREMENT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

interface StoreScripts {
  vmcpAddToGroup(groupKey: string, member: string, ttlMs: number): Promise<number>
  vmcpDeleteGroup(groupKey: string): Promise<number>
  vmcpIncrement(key: string, windowMs: number): Promise<number>
}

/** `host:port` of a Redis URL: the only part of it that may appear in logs and errors. */
function describeUrl(url: string): { where: string; password: string } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // Do not echo the input: it carries the password.
    throw new TypeError('redis url is not a valid URL')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError('redis url must use redis:// or rediss://')
  }
  let password = ''
  try {
    password = decodeURIComponent(parsed.password)
  } catch {
    password = parsed.password
  }
  return { where: `${parsed.hostname}:${parsed.port || '6379'}`, password }
}

/**
 * A Store on Redis. Fails fast while Redis is down (no offline queue, one retry per command) and
 * reconnects in the background, so callers see StorageUnavailableError for the outage only.
 */
export function createRedisStore(options: RedisStoreOptions): Store {
  const { keyPrefix, logger } = options
  const { where, password } = describeUrl(options.url)
  const log = logger.child({ component: 'storage', redis: where })

  // ioredis errors carry `command.args`, which for AUTH/HELLO include the password: only this
  // scrubbed message ever leaves the module, never the error object.
  const scrub = (message: string) => {
    let text = message.split(options.url).join('[redis-url]')
    if (password) text = text.split(password).join('[REDACTED]')
    return text
  }
  const reasonOf = (err: unknown) => scrub(err instanceof Error ? err.message : String(err))

  const client = new Redis(options.url, {
    lazyConnect: true,
    // Fail fast: a command issued while disconnected rejects now instead of waiting in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 3000,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    // Never give up (a null return would stop reconnecting for good).
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), MAX_BACKOFF_MS),
    scripts: {
      vmcpAddToGroup: { lua: ADD_TO_GROUP, numberOfKeys: 1 },
      vmcpDeleteGroup: { lua: DELETE_GROUP, numberOfKeys: 1 },
      vmcpIncrement: { lua: INCREMENT, numberOfKeys: 1 },
    },
  }) as Redis & StoreScripts

  // One warn per outage, one info on recovery: a retry loop must not flood the log.
  let down = false
  let everReady = false
  let closed = false
  // Why the connection is down (e.g. WRONGPASS), so errors say more than "not connected".
  let lastReason: string | undefined
  client.on('error', (err: unknown) => {
    lastReason = reasonOf(err)
  })
  // 'close' rather than 'error': a server that goes away cleanly closes the socket without one.
  client.on('close', () => {
    if (down || closed) return
    down = true
    const reason = lastReason ?? 'connection closed'
    if (everReady) log.warn({ reason }, 'redis connection lost; reconnecting in the background')
    else log.warn({ reason }, 'redis unavailable at startup; retrying in the background')
  })
  client.on('ready', () => {
    if (down) log.info('redis available again')
    else log.debug('redis connected')
    down = false
    everReady = true
    lastReason = undefined
  })

  // Never rejects: a Redis that is down at startup must not fail every later call once it is
  // back. Commands issued after a failed first connect go straight to the client and fail fast.
  const ready = client.connect().then(
    () => true,
    (err: unknown) => {
      // Keep the first, specific reason (WRONGPASS) over the generic "Connection is closed."
      lastReason ??= reasonOf(err)
      return false
    },
  )

  const toStorageError = (err: unknown): Error => {
    if (err instanceof Error && err.name === 'ReplyError') {
      const code = err.message.split(' ', 1)[0] ?? ''
      if (!UNAVAILABLE_REPLIES.has(code)) {
        return new Error(`redis command failed: ${scrub(err.message)}`)
      }
    }
    // Without a connection ioredis only says "Stream isn't writeable" (also in the instant between
    // the socket ending and the status leaving 'ready'): report the cause instead.
    const reason = reasonOf(err)
    const connected = client.status === 'ready' && !reason.startsWith("Stream isn't writeable")
    const detail = connected ? reason : `not connected (${lastReason ?? 'connection lost'})`
    return new StorageUnavailableError(`storage unavailable: redis at ${where}: ${detail}`)
  }

  const run = async <T>(command: () => Promise<T>): Promise<T> => {
    if (closed) throw new StorageUnavailableError('redis store is closed')
    await ready
    try {
      return await command()
    } catch (err) {
      throw toStorageError(err)
    }
  }

  const keyOf = (kind: string, id: string) => {
    checkKind(kind)
    checkId(id)
    return `${keyPrefix}${kind}:${id}`
  }
  const groupKeyOf = (group: string) => {
    checkId(group, 'group')
    return `${keyPrefix}group:${group}`
  }

  return {
    type: 'redis',

    async put(kind, id, value, ttlMs) {
      const key = keyOf(kind, id)
      const ttl = checkTtl(ttlMs)
      const json = encodeValue(value)
      await run(() => client.set(key, json, 'PX', ttl))
    },

    async putIfAbsent(kind, id, value, ttlMs) {
      const key = keyOf(kind, id)
      const ttl = checkTtl(ttlMs)
      const json = encodeValue(value)
      const reply = await run(() => client.set(key, json, 'PX', ttl, 'NX'))
      return reply === 'OK'
    },

    async get<T>(kind: string, id: string) {
      const key = keyOf(kind, id)
      const json = await run(() => client.get(key))
      return json === null ? undefined : decodeValue<T>(json)
    },

    async take<T>(kind: string, id: string) {
      const key = keyOf(kind, id)
      // GETDEL (Redis ≥ 6.2) is one command: of concurrent callers exactly one sees the value,
      // which is what makes authorization codes and refresh tokens single-use.
      const json = await run(() => client.getdel(key))
      return json === null ? undefined : decodeValue<T>(json)
    },

    async delete(kind, id) {
      const key = keyOf(kind, id)
      await run(() => client.del(key))
    },

    async addToGroup(group, kind, id, ttlMs) {
      const groupKey = groupKeyOf(group)
      const key = keyOf(kind, id)
      const ttl = checkTtl(ttlMs)
      await run(() => client.vmcpAddToGroup(groupKey, key, ttl))
    },

    async deleteGroup(group) {
      const groupKey = groupKeyOf(group)
      await run(() => client.vmcpDeleteGroup(groupKey))
    },

    async increment(kind, id, windowMs) {
      const key = keyOf(kind, id)
      const window = checkTtl(windowMs, 'windowMs')
      return Number(await run(() => client.vmcpIncrement(key, window)))
    },

    async count(kind, id) {
      const value = await run(() => client.get(keyOf(kind, id)))
      if (value === null) return 0
      const count = Number(value)
      if (!Number.isSafeInteger(count)) throw new TypeError('storage value is not a counter')
      return count
    },

    async ping() {
      await run(() => client.ping())
    },

    async close() {
      if (closed) return
      closed = true
      if (client.status === 'ready') {
        // QUIT lets in-flight replies arrive; if it cannot be sent, drop the socket instead.
        await client.quit().catch(() => client.disconnect())
      } else {
        // Also stops the reconnect loop and settles a first connect still in progress.
        client.disconnect()
      }
      await ready
    },
  }
}
