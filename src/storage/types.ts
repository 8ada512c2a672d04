/**
 * The narrow storage contract behind Mode B. Values are JSON. Every write has a TTL (ms). Keys
 * are `(kind, id)`; implementations prefix and namespace them. Bearer secrets are never ids:
 * callers pass SHA-256 hex of tokens and codes.
 */
export interface Store {
  readonly type: 'memory' | 'redis'
  /** Writes (overwrites) a value that expires after `ttlMs`. */
  put(kind: string, id: string, value: unknown, ttlMs: number): Promise<void>
  /** Writes only when absent (Redis `SET NX`); false when a value was already there. */
  putIfAbsent(kind: string, id: string, value: unknown, ttlMs: number): Promise<boolean>
  get<T>(kind: string, id: string): Promise<T | undefined>
  /** Atomic read-and-delete (Redis `GETDEL`): of concurrent callers, exactly one gets the value. */
  take<T>(kind: string, id: string): Promise<T | undefined>
  delete(kind: string, id: string): Promise<void>
  /** Records `(kind, id)` as a member of `group` (e.g. every token of one grant). */
  addToGroup(group: string, kind: string, id: string, ttlMs: number): Promise<void>
  /** Deletes every member of `group`, then the group: revoke-by-grant. */
  deleteGroup(group: string): Promise<void>
  /** Fixed-window counter: increments `(kind, id)` and returns the count in the current window. */
  increment(kind: string, id: string, windowMs: number): Promise<number>
  /** Reads a counter written by `increment` without counting: 0 when absent or expired. */
  count(kind: string, id: string): Promise<number>
  /** Resolves when the store answers; rejects with StorageUnavailableError otherwise. */
  ping(): Promise<void>
  close(): Promise<void>
}

/** The store cannot be reached (Redis down). Mapped to 503 at the edge, never to 401. */
export class StorageUnavailableError extends Error {
  constructor(message = 'storage unavailable', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageUnavailableError'
  }
}

/** Seals and opens strings with AES-256-GCM (upstream tokens and other secrets at rest). */
export interface Sealer {
  /** `aad` (e.g. the storage key) is bound to the ciphertext without being stored in it. */
  seal(plaintext: string, aad?: string): string
  /**
   * Throws when the ciphertext was tampered with, sealed under another key, or sealed with
   * another `aad`.
   */
  open(sealed: string, aad?: string): string
}
