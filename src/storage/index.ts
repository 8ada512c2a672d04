import type { Logger } from '../log/index.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore } from './redis-store.js'
import type { Store } from './types.js'

export { StorageUnavailableError, type Sealer, type Store } from './types.js'

/**
 * Stores `(kind, id) → JSON` in process memory with a TTL on every entry.
 *
 * Values are stored JSON-encoded, so callers cannot mutate stored state and a value that Redis
 * would not round-trip (Date, Map, `undefined`) behaves the same here. Lost on restart and not
 * shared between replicas: for development and tests. Inject `now` to expire entries without
 * waiting. Call `close()` to stop its sweep timer (the timer is unref'd and never blocks exit).
 * Bounded by `maxEntries`: when full it evicts the oldest writes and logs one warn per batch.
 */
export { createMemoryStore, type MemoryStoreOptions } from './memory-store.js'

/**
 * Stores `(kind, id) → JSON` in Redis under `${keyPrefix}${kind}:${id}`, every write with a TTL.
 *
 * Fails fast while Redis is unreachable: operations reject with StorageUnavailableError (map it to
 * 503) instead of queueing, and the client reconnects in the background. Errors and logs name
 * only `host:port`, never the URL's credentials. Needs Redis ≥ 6.2 (`GETDEL`). The caller must
 * `close()` it on shutdown. Values are not encrypted here: seal secrets with createSealer first.
 */
export { createRedisStore, type RedisStoreOptions } from './redis-store.js'

/**
 * Seals strings with AES-256-GCM under a 32-byte key (throws RangeError otherwise) as
 * `v1.<iv>.<tag>.<ciphertext>` (base64url parts, random 12-byte IV per seal).
 *
 * `open` throws on any tampering, truncation or a different key; it never returns partial
 * plaintext. Seal upstream tokens and DCR secrets before putting them in a store that outlives the
 * process. Key rotation is the caller's concern (the `v1` prefix leaves room for it).
 */
export { createSealer } from './sealer.js'
export { loadOrCreateSealingKey } from './key-file.js'
export { createEntriesFile, type EntriesFile, type EntriesFileOptions } from './entries-file.js'

/**
 * Wraps a Store so every value is sealed (AES-256-GCM, AAD = `${keyPrefix}${kind}:${id}`) before
 * the inner store sees it. A record that was edited, copied under another key or sealed under
 * another encryption key reads as absent, with one warn line (never an exception). Counters and
 * group membership pass through unsealed. Wrap any store that outlives the process.
 */
export { createSealedStore, type SealedStoreOptions } from './sealed-store.js'

/**
 * SHA-256 hex of a secret: the only way to turn an authorization code, refresh token or other
 * bearer secret into a store id, so a dump of the store holds no usable secret.
 */
export { hashId } from './hash-id.js'

/** Storage selection as it appears in the auth server's run config. */
export interface StoreConfig {
  type: 'memory' | 'redis'
  redis?: { url: string; keyPrefix: string }
  /** Memory only: the entry bound (createMemoryStore `maxEntries`). */
  maxEntries?: number
}

/**
 * Builds the configured Store. Throws when `type` is `redis` without `redis` settings (config
 * validation rejects that earlier). Does not wait for Redis: a Redis store connects in the
 * background and `ping()` tells whether it is reachable (use it for readiness).
 */
export function createStore(config: StoreConfig, logger: Logger): Store {
  if (config.type === 'memory') {
    return createMemoryStore({
      logger,
      ...(config.maxEntries !== undefined ? { maxEntries: config.maxEntries } : {}),
    })
  }
  if (!config.redis) throw new TypeError('storage type redis needs redis settings')
  return createRedisStore({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, logger })
}
