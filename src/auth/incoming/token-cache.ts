import { hash } from 'node:crypto'

/** A bounded expiring map whose keys are bearer tokens, stored only as their SHA-256. */
export interface TokenCache<V> {
  get(token: string): V | undefined
  set(token: string, value: V, expiresAt: number): void
  clear(): void
}

export interface TokenCacheOptions {
  maxEntries: number
}

/**
 * Tokens are hashed before they become keys (ARCHITECTURE.md §Storage: bearer secrets are never
 * keys), so a heap dump of the cache does not hand out usable tokens. When full, the oldest
 * insertion is evicted: Map iteration order is insertion order.
 */
export function createTokenCache<V>(options: TokenCacheOptions): TokenCache<V> {
  const entries = new Map<string, { value: V; expiresAt: number }>()
  // One-shot hash: no Hash object per lookup (every authenticated request does one).
  const keyOf = (token: string) => hash('sha256', token, 'hex')
  return {
    get(token) {
      const key = keyOf(token)
      const entry = entries.get(key)
      if (!entry) return undefined
      if (entry.expiresAt <= Date.now()) {
        entries.delete(key)
        return undefined
      }
      return entry.value
    },
    set(token, value, expiresAt) {
      if (expiresAt <= Date.now()) return
      const key = keyOf(token)
      entries.delete(key)
      entries.set(key, { value, expiresAt })
      while (entries.size > options.maxEntries) {
        const oldest = entries.keys().next()
        if (oldest.done) break
        entries.delete(oldest.value)
      }
    },
    clear() {
      entries.clear()
    },
  }
}
