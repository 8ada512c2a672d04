import { fingerprint, type Logger } from '../log/index.js'
import { decodeValue, encodeValue } from './key-scheme.js'
import type { Sealer, Store } from './types.js'

export interface SealedStoreOptions {
  store: Store
  sealer: Sealer
  logger: Logger
  /** Part of every record's AAD before `kind:id` (the Redis keyPrefix), so it is the full key. */
  keyPrefix?: string
}

/**
 * Seals every value with AES-256-GCM, AAD = the record's key, before the inner store sees it.
 * Counters (`increment`) and group membership stay plain: they hold no secret and Redis has to do
 * arithmetic on them.
 */
export function createSealedStore(options: SealedStoreOptions): Store {
  const { store: inner, sealer } = options
  const log = options.logger.child({ component: 'storage' })
  const prefix = options.keyPrefix ?? ''
  const aadOf = (kind: string, id: string) => `${prefix}${kind}:${id}`
  const seal = (kind: string, id: string, value: unknown) =>
    sealer.seal(encodeValue(value), aadOf(kind, id))
  const open = <T>(kind: string, id: string, stored: unknown): T | undefined => {
    if (stored === undefined) return undefined
    try {
      if (typeof stored !== 'string') throw new TypeError('not a sealed record')
      // The AAD binds the record to its key: edited bytes, or a record copied under another key
      // (another user's grant, another client's registration), fail the GCM tag check.
      return decodeValue<T>(sealer.open(stored, aadOf(kind, id)))
    } catch {
      // Absent, never a crash: whoever can write to Redis can delete records anyway.
      log.warn(
        { kind, id: fingerprint(id) },
        'stored record failed authentication (edited, moved, or sealed under another key); treated as absent',
      )
      return undefined
    }
  }

  return {
    type: inner.type,
    async put(kind, id, value, ttlMs) {
      await inner.put(kind, id, seal(kind, id, value), ttlMs)
    },
    async putIfAbsent(kind, id, value, ttlMs) {
      return inner.putIfAbsent(kind, id, seal(kind, id, value), ttlMs)
    },
    async get<T>(kind: string, id: string) {
      return open<T>(kind, id, await inner.get<unknown>(kind, id))
    },
    async take<T>(kind: string, id: string) {
      return open<T>(kind, id, await inner.take<unknown>(kind, id))
    },
    delete: (kind, id) => inner.delete(kind, id),
    addToGroup: (group, kind, id, ttlMs) => inner.addToGroup(group, kind, id, ttlMs),
    deleteGroup: (group) => inner.deleteGroup(group),
    increment: (kind, id, windowMs) => inner.increment(kind, id, windowMs),
    count: (kind, id) => inner.count(kind, id),
    ping: () => inner.ping(),
    close: () => inner.close(),
  }
}
