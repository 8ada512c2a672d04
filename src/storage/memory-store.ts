import type { Logger } from '../log/index.js'
import { checkId, checkKind, checkTtl, decodeValue, encodeValue } from './key-scheme.js'
import { StorageUnavailableError, type Store } from './types.js'

export interface MemoryStoreOptions {
  /** Clock in epoch ms (default `Date.now`); tests inject one to expire entries without waiting. */
  now?: () => number
  /** How often expired entries are swept (default 60 s); reads expire lazily in between. */
  sweepIntervalMs?: number
  /**
   * Most records (and, separately, groups) kept (default 100 000). Beyond it, expired entries are
   * swept and then the oldest writes evicted, a tenth of the bound at a time, one warn per batch.
   */
  maxEntries?: number
  /** Receives the eviction warnings. */
  logger?: Logger
}

export const DEFAULT_MAX_ENTRIES = 100_000

interface Entry {
  json: string
  expiresAt: number
}

interface Group {
  members: Set<string>
  expiresAt: number
}

/**
 * A single-process Store. Every method body runs to completion before the first `await`, so
 * `take`, `putIfAbsent` and `increment` are atomic without locks.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  const now = options.now ?? Date.now
  const entries = new Map<string, Entry>()
  const groups = new Map<string, Group>()
  let closed = false

  const keyOf = (kind: string, id: string) => {
    checkKind(kind)
    checkId(id)
    return `${kind}:${id}`
  }
  const live = <V extends { expiresAt: number }>(map: Map<string, V>, key: string) => {
    const value = map.get(key)
    if (value === undefined) return undefined
    // Same boundary as Redis: an entry with PX n is gone once n ms have passed.
    if (value.expiresAt <= now()) {
      map.delete(key)
      return undefined
    }
    return value
  }
  const open = () => {
    if (closed) throw new StorageUnavailableError('memory store is closed')
  }

  const sweep = () => {
    const t = now()
    for (const [key, entry] of entries) if (entry.expiresAt <= t) entries.delete(key)
    for (const [key, group] of groups) if (group.expiresAt <= t) groups.delete(key)
  }

  // Maps iterate in insertion order and `set` re-inserts on put, so the first keys are the
  // oldest writes. Evicting in batches keeps this O(1) amortized and the log to one line per batch.
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  const batch = Math.max(1, Math.floor(maxEntries / 10))
  const evict = <V>(map: Map<string, V>, what: string, onEvict?: (value: V) => void) => {
    if (map.size <= maxEntries) return
    sweep()
    if (map.size <= maxEntries) return
    let evicted = 0
    for (const [key, value] of map) {
      if (map.size <= maxEntries - batch) break
      map.delete(key)
      onEvict?.(value)
      evicted++
    }
    options.logger?.warn(
      { evicted, maxEntries, what },
      'memory store full: evicted the oldest entries (raise storage.maxEntries or use Redis)',
    )
  }
  const write = (key: string, entry: Entry) => {
    entries.delete(key)
    entries.set(key, entry)
    evict(entries, 'records')
  }
  // unref: an idle store must not keep the process (or a test worker) alive.
  const timer = setInterval(sweep, options.sweepIntervalMs ?? 60_000)
  timer.unref()

  return {
    type: 'memory',

    async put(kind, id, value, ttlMs) {
      open()
      const key = keyOf(kind, id)
      const ttl = checkTtl(ttlMs)
      write(key, { json: encodeValue(value), expiresAt: now() + ttl })
    },

    async putIfAbsent(kind, id, value, ttlMs) {
      open()
      const key = keyOf(kind, id)
      const ttl = checkTtl(ttlMs)
      const json = encodeValue(value)
      if (live(entries, key)) return false
      write(key, { json, expiresAt: now() + ttl })
      return true
    },

    async get<T>(kind: string, id: string) {
      open()
      const entry = live(entries, keyOf(kind, id))
      return entry ? decodeValue<T>(entry.json) : undefined
    },

    async take<T>(kind: string, id: string) {
      open()
      const key = keyOf(kind, id)
      const entry = live(entries, key)
      if (!entry) return undefined
      entries.delete(key)
      return decodeValue<T>(entry.json)
    },

    async delete(kind, id) {
      open()
      entries.delete(keyOf(kind, id))
    },

    async addToGroup(group, kind, id, ttlMs) {
      open()
      checkId(group, 'group')
      const key = keyOf(kind, id)
      const expiresAt = now() + checkTtl(ttlMs)
      const current = live(groups, group)
      if (!current) {
        groups.set(group, { members: new Set([key]), expiresAt })
        // An evicted group takes its members with it: revoke-by-grant must never miss one.
        evict(groups, 'groups', (g) => {
          for (const member of g.members) entries.delete(member)
        })
        return
      }
      current.members.add(key)
      // The group lives as long as its longest-lived member, so revoking still finds that member.
      current.expiresAt = Math.max(current.expiresAt, expiresAt)
    },

    async deleteGroup(group) {
      open()
      checkId(group, 'group')
      const current = live(groups, group)
      if (current) for (const key of current.members) entries.delete(key)
      groups.delete(group)
    },

    async increment(kind, id, windowMs) {
      open()
      const key = keyOf(kind, id)
      const window = checkTtl(windowMs, 'windowMs')
      const entry = live(entries, key)
      if (!entry) {
        write(key, { json: '1', expiresAt: now() + window })
        return 1
      }
      const count = decodeValue<unknown>(entry.json)
      // Mirrors Redis INCR, which refuses to count over a non-integer value.
      if (!Number.isSafeInteger(count)) throw new TypeError('storage value is not a counter')
      const next = (count as number) + 1
      entry.json = String(next)
      return next
    },

    async count(kind, id) {
      open()
      const entry = live(entries, keyOf(kind, id))
      if (!entry) return 0
      const count = decodeValue<unknown>(entry.json)
      if (!Number.isSafeInteger(count)) throw new TypeError('storage value is not a counter')
      return count as number
    },

    async ping() {
      open()
    },

    async close() {
      closed = true
      clearInterval(timer)
      entries.clear()
      groups.clear()
    },
  }
}
