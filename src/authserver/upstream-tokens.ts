import { randomUUID } from 'node:crypto'
import { fingerprint, Secret, type Logger } from '../log/index.js'
import { abortable } from '../net/index.js'
import { StorageUnavailableError, type Sealer, type Store } from '../storage/index.js'
import { UpstreamRefreshError, type UpstreamTokenSource } from './contracts.js'
import {
  describeError,
  UpstreamAuthError,
  type UpstreamClient,
  type UpstreamTokenSet,
} from './upstreams.js'

/** Store kind of one upstream's tokens for one session; id `${tsid}:${upstream}`. */
export const UPSTREAM_TOKENS_KIND = 'upstream-tokens'
const LOCK_KIND = 'upstream-refresh-lock'
/** Marker of a revoked session, id tsid: checked after every row write. */
const REVOKED_KIND = 'upstream-session-revoked'
const groupOf = (tsid: string) => `tsid:${tsid}`
const idOf = (tsid: string, upstream: string) => `${tsid}:${upstream}`

/** What reaches the Store: the tokens sealed; only the row's lifetime in clear. */
interface StoredRow {
  sealed: string
  /** Epoch ms when the session (and so this row) ends; a refresh keeps it. */
  sessionExpiresAt: number
}

/** The sealed plaintext. `tsid` and `upstream` bind the ciphertext to its key. */
interface SealedTokens {
  tsid: string
  upstream: string
  accessToken: string
  refreshToken?: string
  idToken?: string
  expiresAt?: number
  subject?: string
  issuer?: string
}

export interface UpstreamTokenStoreOptions {
  store: Store
  /** AES-256-GCM sealer: tokens are sealed before they reach the Store. */
  sealer: Sealer
  /** The upstream clients, in chain order (refresh goes through them). */
  upstreams: readonly UpstreamClient[]
  logger: Logger
  /** Refresh this long before `expiresAt`, so a token handed out is still valid. Default 30 s. */
  refreshSkewMs?: number
  /** Cross-replica refresh lock lifetime; must exceed one refresh round trip. Default 20 s. */
  lockTtlMs?: number
  /** How often a replica waiting on another's refresh re-reads the row. Default 100 ms. */
  lockPollMs?: number
  /**
   * How long a revoked marker lasts; must cover any row's remaining life (the longest session:
   * `tokenLifespans.refreshToken`). Default 90 days.
   */
  revokedTtlMs?: number
  /** Clock in epoch ms. Default `Date.now`. */
  now?: () => number
}

/** UpstreamTokenSource plus the write side used by the callback endpoint. */
export interface UpstreamTokenStore extends UpstreamTokenSource {
  /** Seals and stores one upstream's tokens for `tsid`; the row lives `ttlMs`. */
  save(tsid: string, upstream: string, tokens: UpstreamTokenSet, ttlMs: number): Promise<void>
  /**
   * Makes every stored upstream token row of `tsid` live `ttlMs` from now: the chain saves each
   * leg briefly and extends them all once it completes, so an abandoned chain leaves nothing
   * long-lived behind. Also the hook for keeping upstream tokens alive with a vmcp refresh family.
   */
  extend(tsid: string, ttlMs: number): Promise<void>
}

/**
 * Upstream tokens at rest: sealed with the Sealer (ARCHITECTURE.md §Storage: encrypted in any
 * store that outlives the process), one row per (tsid, upstream), grouped by tsid for revoke.
 *
 * `tokensFor` refreshes access tokens that are within `refreshSkewMs` of expiry. One refresh at a
 * time per (tsid, upstream): single-flight in this process, and across replicas a short
 * `putIfAbsent` lock after which the row is read again (another replica may have rotated the
 * refresh token already, and a second use of the old one could revoke the whole family at the
 * upstream: RFC 9700 §4.14.2).
 */
export function createUpstreamTokenStore(options: UpstreamTokenStoreOptions): UpstreamTokenStore {
  const { store, sealer } = options
  const now = options.now ?? Date.now
  const skew = options.refreshSkewMs ?? 30_000
  const lockTtlMs = options.lockTtlMs ?? 20_000
  const lockPollMs = options.lockPollMs ?? 100
  const revokedTtlMs = options.revokedTtlMs ?? 90 * 86_400_000
  const listeners = new Set<(tsid: string) => void>()
  const log = options.logger.child({ component: 'authserver.upstream-tokens' })
  const clients = new Map(options.upstreams.map((c) => [c.name, c]))
  const inflight = new Map<string, Promise<SealedTokens>>()
  const changedListeners = new Set<(tsid: string) => void>()
  const tokensChanged = (tsid: string) => {
    for (const listener of changedListeners) listener(tsid)
  }

  function open(row: StoredRow, tsid: string, upstream: string): SealedTokens {
    let tokens: SealedTokens
    try {
      tokens = JSON.parse(sealer.open(row.sealed)) as SealedTokens
    } catch (err) {
      // Tampered, or sealed under a previous encryptionKey: the user has to sign in again.
      const detail = describeError(err)
      const tsidFp = fingerprint(tsid)
      log.warn({ upstream, tsidFp, err: detail }, 'stored upstream tokens unreadable')
      throw new UpstreamRefreshError(upstream)
    }
    // A row copied under another key (another session's tokens) is not ours.
    if (tokens.tsid !== tsid || tokens.upstream !== upstream) {
      log.warn({ upstream, tsidFp: fingerprint(tsid) }, 'stored upstream tokens of another session')
      throw new UpstreamRefreshError(upstream)
    }
    return tokens
  }

  const isRevoked = async (tsid: string) => (await store.get<boolean>(REVOKED_KIND, tsid)) === true

  /**
   * Stores the row; false (and nothing stored) when the session was revoked. The marker is read
   * after the write: revoke writes it before deleting, so a row written back by a refresh that
   * raced a revocation is removed by one side or the other, and the revocation wins.
   */
  async function write(tokens: SealedTokens, sessionExpiresAt: number): Promise<boolean> {
    const ttlMs = sessionExpiresAt - now()
    if (ttlMs <= 0) throw new UpstreamRefreshError(tokens.upstream)
    const row: StoredRow = { sealed: sealer.seal(JSON.stringify(tokens)), sessionExpiresAt }
    const id = idOf(tokens.tsid, tokens.upstream)
    await store.put(UPSTREAM_TOKENS_KIND, id, row, ttlMs)
    await store.addToGroup(groupOf(tokens.tsid), UPSTREAM_TOKENS_KIND, id, ttlMs)
    tokensChanged(tokens.tsid)
    if (!(await isRevoked(tokens.tsid))) return true
    await store.delete(UPSTREAM_TOKENS_KIND, id)
    return false
  }

  /** RFC 7009 at the upstream, best effort: a failure is logged (without tokens) and swallowed. */
  async function revokeAtUpstream(tokens: SealedTokens): Promise<void> {
    const client = clients.get(tokens.upstream)
    if (!client) return
    const tsidFp = fingerprint(tokens.tsid)
    try {
      const revoked = await client.revoke({
        accessToken: tokens.accessToken,
        ...(tokens.refreshToken ? { refreshToken: tokens.refreshToken } : {}),
      })
      log.debug({ upstream: tokens.upstream, tsidFp, revoked }, 'upstream revocation done')
    } catch (err) {
      const detail = describeError(err)
      log.warn({ upstream: tokens.upstream, tsidFp, err: detail }, 'upstream revocation failed')
    }
  }

  const needsRefresh = (t: SealedTokens) => t.expiresAt !== undefined && now() >= t.expiresAt - skew

  /**
   * Runs `onLocked` holding the cross-replica lock of one row (re-reading the row inside it).
   * While another replica holds it, `onWait` sees the row after each poll and may settle early.
   */
  async function withRowLock<T>(
    tsid: string,
    upstream: string,
    onLocked: (row: StoredRow | undefined) => Promise<T>,
    onWait?: (row: StoredRow | undefined) => T | undefined,
  ): Promise<T> {
    const id = idOf(tsid, upstream)
    // Wall time, not the injectable token clock: this bounds how long a caller waits.
    const deadline = Date.now() + lockTtlMs + lockPollMs
    for (;;) {
      const owner = randomUUID()
      if (await store.putIfAbsent(LOCK_KIND, id, owner, lockTtlMs)) {
        try {
          return await onLocked(await store.get<StoredRow>(UPSTREAM_TOKENS_KIND, id))
        } finally {
          await release(id, owner)
        }
      }
      if (Date.now() > deadline) {
        throw refreshError(upstream, 'timed out waiting for the refresh lock')
      }
      await new Promise((resolve) => setTimeout(resolve, lockPollMs))
      if (onWait) {
        const settled = onWait(await store.get<StoredRow>(UPSTREAM_TOKENS_KIND, id))
        if (settled !== undefined) return settled
      }
    }
  }

  /** Refreshes under the lock, or takes the result of the replica that holds it. */
  function refreshShared(tsid: string, upstream: string): Promise<SealedTokens> {
    const current = (row: StoredRow | undefined) => {
      // Revoked meanwhile.
      if (!row) throw new UpstreamRefreshError(upstream)
      return open(row, tsid, upstream)
    }
    return withRowLock(
      tsid,
      upstream,
      async (row) => {
        const tokens = current(row)
        // Another replica may have refreshed between our first read and the lock.
        if (!needsRefresh(tokens)) return tokens
        return refreshRow(tokens, (row as StoredRow).sessionExpiresAt)
      },
      (row) => {
        const tokens = current(row)
        return needsRefresh(tokens) ? undefined : tokens
      },
    )
  }

  async function release(id: string, owner: string): Promise<void> {
    try {
      // No compare-and-delete in the Store contract: a lock that expired and was taken over in
      // between could be dropped early, which costs at most one extra refresh.
      if ((await store.get<string>(LOCK_KIND, id)) === owner) await store.delete(LOCK_KIND, id)
    } catch (err) {
      // The lock expires on its own.
      log.debug({ err: describeError(err) }, 'refresh lock not released')
    }
  }

  async function refreshRow(tokens: SealedTokens, sessionExpiresAt: number): Promise<SealedTokens> {
    const { upstream } = tokens
    const client = clients.get(upstream)
    if (!client) throw refreshError(upstream, 'upstream is no longer configured')
    if (!tokens.refreshToken) {
      throw refreshError(upstream, 'access token expired and no refresh token')
    }
    let fresh: UpstreamTokenSet
    try {
      fresh = await client.refresh(tokens.refreshToken)
    } catch (err) {
      const detail = describeError(err)
      const tsidFp = fingerprint(tokens.tsid)
      log.info({ upstream, tsidFp, err: detail }, 'upstream token refresh failed')
      if (err instanceof UpstreamAuthError && err.permanent) {
        // Keep the row without its dead refresh token: later requests fail fast, without another
        // round trip to the upstream, until the user signs in again.
        const { refreshToken: _dead, ...rest } = tokens
        await write(rest, sessionExpiresAt)
      }
      throw refreshError(upstream, detail)
    }
    // OIDC Core §12.2: an ID token from a refresh must be about the same user.
    const { subject } = tokens
    if (fresh.subject !== undefined && subject !== undefined && fresh.subject !== subject) {
      throw refreshError(upstream, 'refreshed ID token has another subject')
    }
    const next: SealedTokens = {
      tsid: tokens.tsid,
      upstream,
      accessToken: fresh.accessToken,
      // RFC 6749 §6: the upstream may rotate the refresh token; else the old one stays valid.
      ...((fresh.refreshToken ?? tokens.refreshToken)
        ? { refreshToken: fresh.refreshToken ?? tokens.refreshToken }
        : {}),
      ...((fresh.idToken ?? tokens.idToken) ? { idToken: fresh.idToken ?? tokens.idToken } : {}),
      ...(fresh.expiresAt !== undefined ? { expiresAt: fresh.expiresAt } : {}),
      ...(tokens.subject !== undefined ? { subject: tokens.subject } : {}),
      ...(tokens.issuer !== undefined ? { issuer: tokens.issuer } : {}),
    }
    if (!(await write(next, sessionExpiresAt))) {
      // Revoked while the upstream answered: the fresh tokens are not kept, and not left live.
      await revokeAtUpstream(next)
      throw refreshError(upstream, 'session revoked during the refresh')
    }
    log.debug(
      { upstream, tsidFp: fingerprint(tokens.tsid), accessTokenFp: fingerprint(next.accessToken) },
      'upstream tokens refreshed and stored',
    )
    return next
  }

  async function accessTokenFor(
    tsid: string,
    upstream: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const id = idOf(tsid, upstream)
    const row = await store.get<StoredRow>(UPSTREAM_TOKENS_KIND, id)
    if (!row) return undefined
    const tokens = open(row, tsid, upstream)
    if (!needsRefresh(tokens)) return tokens.accessToken
    let pending = inflight.get(id)
    if (!pending) {
      // Not tied to one caller's signal: every concurrent caller waits on this one refresh.
      const started = refreshShared(tsid, upstream)
      pending = started
      inflight.set(id, started)
      const clear = () => {
        if (inflight.get(id) === started) inflight.delete(id)
      }
      started.then(clear, clear)
    }
    return (await abortable(pending, signal)).accessToken
  }

  return {
    async save(tsid, upstream, tokens, ttlMs) {
      const sealed: SealedTokens = {
        tsid,
        upstream,
        accessToken: tokens.accessToken,
        ...(tokens.refreshToken !== undefined ? { refreshToken: tokens.refreshToken } : {}),
        ...(tokens.idToken !== undefined ? { idToken: tokens.idToken } : {}),
        ...(tokens.expiresAt !== undefined ? { expiresAt: tokens.expiresAt } : {}),
        ...(tokens.subject !== undefined ? { subject: tokens.subject } : {}),
        ...(tokens.issuer !== undefined ? { issuer: tokens.issuer } : {}),
      }
      if (!(await write(sealed, now() + ttlMs))) {
        await revokeAtUpstream(sealed)
        throw refreshError(upstream, 'session revoked')
      }
      log.debug(
        { upstream, tsidFp: fingerprint(tsid), accessTokenFp: fingerprint(tokens.accessToken) },
        'upstream tokens stored',
      )
    },

    async extend(tsid, ttlMs) {
      const until = now() + ttlMs
      await Promise.all(
        [...clients.keys()].map((upstream) =>
          // Under the refresh lock: rewriting a row a refresh is rotating would lose the new
          // refresh token, and the next refresh would replay the old one.
          withRowLock(tsid, upstream, async (row) => {
            if (row) await write(open(row, tsid, upstream), until)
          }),
        ),
      )
    },

    async tokensFor(tsid, signal) {
      signal?.throwIfAborted()
      const names = [...clients.keys()]
      const results = await Promise.allSettled(names.map((n) => accessTokenFor(tsid, n, signal)))
      const failures = results.flatMap((r) =>
        r.status === 'rejected' ? [r.reason as unknown] : [],
      )
      // Storage down is our problem (503), not the user's: it wins over a refresh failure (401).
      const unavailable = failures.find((e) => e instanceof StorageUnavailableError)
      if (unavailable) throw unavailable
      if (failures.length > 0) throw failures[0]
      const out: Record<string, Secret> = {}
      results.forEach((r, i) => {
        const name = names[i]
        if (name !== undefined && r.status === 'fulfilled' && r.value !== undefined) {
          out[name] = new Secret(r.value)
        }
      })
      return out
    },

    async revoke(tsid) {
      // The marker first: a refresh in flight checks it after writing its row back.
      await store.put(REVOKED_KIND, tsid, true, revokedTtlMs)
      const names = [...clients.keys()]
      const rows = await Promise.all(
        names.map((n) => store.get<StoredRow>(UPSTREAM_TOKENS_KIND, idOf(tsid, n))),
      )
      // Row ids are deterministic, so delete them directly too: a group lost to eviction must not
      // leave tokens behind.
      await Promise.all(names.map((n) => store.delete(UPSTREAM_TOKENS_KIND, idOf(tsid, n))))
      await store.deleteGroup(groupOf(tsid))
      const tsidFp = fingerprint(tsid)
      log.debug({ tsidFp }, 'upstream tokens revoked')
      for (const listener of listeners) {
        try {
          listener(tsid)
        } catch (err) {
          log.warn({ tsidFp, err: describeError(err) }, 'revocation listener failed')
        }
      }
      const held = rows.flatMap((row, i) => {
        const name = names[i]
        if (!row || name === undefined) return []
        try {
          return [open(row, tsid, name)]
        } catch {
          // Unreadable: nothing to revoke upstream (open logged why).
          return []
        }
      })
      await Promise.all(held.map(revokeAtUpstream))
    },

    isRevoked,

    onRevoke(listener) {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },

    onTokensChanged(listener) {
      changedListeners.add(listener)
    },
  }
}

/** An UpstreamRefreshError whose cause (log only) says why. */
function refreshError(upstream: string, why: string): UpstreamRefreshError {
  return new UpstreamRefreshError(upstream, { cause: new Error(why) })
}
