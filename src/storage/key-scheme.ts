// Shared argument rules, so the memory and Redis stores accept and reject exactly the same calls.

// Kinds are code constants. Banning ':' keeps `${kind}:${id}` unambiguous (kind 'a:b' + id 'c'
// would otherwise collide with kind 'a' + id 'b:c'); 'group' is taken by the Redis group sets.
const KIND = /^[A-Za-z0-9._-]+$/
const RESERVED_KINDS = new Set(['group'])

export function checkKind(kind: string): void {
  if (typeof kind !== 'string' || !KIND.test(kind) || RESERVED_KINDS.has(kind)) {
    throw new TypeError(`invalid storage kind: ${JSON.stringify(kind)}`)
  }
}

// Ids are usually SHA-256 hex of a secret, so they are never echoed into the error.
export function checkId(id: string, what = 'id'): void {
  if (typeof id !== 'string' || id.length === 0) {
    throw new TypeError(`storage ${what} must be a non-empty string`)
  }
}

/** Redis `PX` wants a positive integer; a zero or fractional TTL is rounded up, never dropped. */
export function checkTtl(ttlMs: number, what = 'ttlMs'): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`storage ${what} must be a positive number of milliseconds`)
  }
  return Math.ceil(ttlMs)
}

/**
 * Values are JSON in every store: the memory store keeps the encoded text too, so a value that
 * would not survive Redis (a Date, a Map, `undefined`) behaves the same in unit tests as in
 * production.
 */
export function encodeValue(value: unknown): string {
  const json = JSON.stringify(value)
  if (json === undefined) throw new TypeError('storage values must be JSON-serializable')
  return json
}

export function decodeValue<T>(json: string): T {
  return JSON.parse(json) as T
}
