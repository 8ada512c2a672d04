import { randomBytes } from 'node:crypto'
import type { AuthServerConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import { hashId, type Store } from '../storage/index.js'
import type { CodeGrant, CodeIssuer } from './contracts.js'
import type { OAuthError } from './oauth-error.js'

/**
 * What a refresh token family stands for: the code's grant, less what only the code needed. Its
 * `scope` is the one granted at authorization: a refresh may narrow the access token, never this.
 * Every token of one family shares `grantId` and `tsid`.
 */
export type RefreshFamily = {
  grantId: string
  /**
   * Epoch ms when the family ends however often it rotates: code redemption plus
   * `tokenLifespans.refreshMax`.
   */
  endsAt: number
} & Pick<CodeGrant, 'clientId' | 'scope' | 'resource' | 'subject' | 'tsid' | 'name' | 'email'>

/** What revoking one refresh token did (RFC 7009 §2.1). */
export type RefreshRevocation =
  /** Its family is gone, and the upstream tokens of its tsid. */
  | 'revoked'
  /** Issued to another client: left alone. */
  | 'other-client'
  /** Not a refresh token of ours (or already revoked or expired). */
  | 'unknown'

export type CodeRedemption =
  | { status: 'ok'; grantId: string; grant: CodeGrant }
  /** `check` refused it; the code stays as it was (unused codes stay redeemable). */
  | { status: 'rejected'; error: OAuthError }
  /** A second use that passed `check`: everything issued from the code has just been revoked. */
  | { status: 'replayed' }
  /** Unknown or expired. */
  | { status: 'invalid' }

export type RefreshRotation =
  | { status: 'ok'; family: RefreshFamily; refreshToken: string }
  /** `check` refused it; the presented token stays valid. */
  | { status: 'rejected'; error: OAuthError }
  /** A rotated token came back: the whole family has just been revoked. */
  | { status: 'reused' }
  /** Unknown, expired or revoked. */
  | { status: 'invalid' }

export interface GrantStore extends CodeIssuer {
  /** Stores the grant under SHA-256 of a new single-use code (TTL `authCode`); returns the code. */
  issueCode(grant: Omit<CodeGrant, 'issuedAt'>): Promise<string>
  /**
   * Single-use redemption. `check` (client, redirect_uri, PKCE) sees the grant before the code is
   * consumed, so a failed attempt does not burn it; only a use that passes `check` consumes it,
   * and a second such use is a replay that revokes the grant (and its tsid) before answering.
   */
  redeemCode(
    code: string,
    check: (grant: CodeGrant) => OAuthError | undefined,
  ): Promise<CodeRedemption>
  /** A new refresh token in the family; undefined when the grant was revoked meanwhile. */
  issueRefreshToken(family: RefreshFamily): Promise<string | undefined>
  /**
   * Rotation with reuse detection (RFC 9700 §4.14.2). `check` sees the family before the token is
   * consumed, so a client mistake (wrong scope, resource or client) does not burn it.
   */
  rotateRefreshToken(
    token: string,
    check: (family: RefreshFamily) => OAuthError | undefined,
  ): Promise<RefreshRotation>
  /** Revokes every code and refresh token of the grant, then the upstream tokens of `tsid`. */
  revokeGrant(grantId: string, tsid: string, reason: string): Promise<void>
  /**
   * RFC 7009 §2.1: revokes the family of `token` (current or already rotated) when it was issued
   * to `clientId`.
   */
  revokeRefreshToken(token: string, clientId: string): Promise<RefreshRevocation>
  /** Revokes the grant whose code was issued for `tsid` (if any), then the upstream tokens. */
  revokeSession(tsid: string, reason: string): Promise<void>
}

export interface GrantStoreOptions {
  store: Store
  config: Pick<AuthServerConfig, 'tokenLifespans'>
  logger: Logger
  /** Called with the family's tsid when a grant is revoked (wire UpstreamTokenSource.revoke). */
  onRevoke?: (tsid: string) => Promise<void> | void
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number
}

const CODE_KIND = 'authcode'
const USED_CODE_KIND = 'authcode-used'
const REFRESH_KIND = 'refresh'
const USED_REFRESH_KIND = 'refresh-used'
const REVOKED_KIND = 'grant-revoked'
/** tsid → grantId: an access token names its session, revocation needs the grant. */
const SESSION_GRANT_KIND = 'session-grant'
// Bearer strings never leave the process except to their client; longer input is not ours.
const MAX_TOKEN_LENGTH = 512

interface StoredCode {
  grantId: string
  grant: CodeGrant
}

interface UsedMarker {
  grantId: string
  tsid: string
  /** Lets a rotated token still be revoked by its own client (RFC 7009 §2.1). */
  clientId?: string
}

/** A redeemed code keeps its grant, so a later attempt can be checked like the first. */
type UsedCode = StoredCode

const groupOf = (grantId: string) => `grant:${grantId}`
// 256 random bits, base64url: unguessable, and URL-safe for the redirect query.
const randomToken = () => randomBytes(32).toString('base64url')

/**
 * Authorization codes and refresh-token families over the Store. Codes and tokens are stored only
 * as SHA-256 ids; every one of them joins the group of its grant, so revoking a grant is one
 * `deleteGroup`. Access tokens are JWTs and cannot be recalled: revocation removes the refresh
 * tokens and, through `onRevoke`, the upstream tokens that give an access token its worth.
 */
export function createGrantStore(options: GrantStoreOptions): GrantStore {
  const { store, logger } = options
  const now = options.now ?? Date.now
  const codeTtl = options.config.tokenLifespans.authCode
  const refreshTtl = options.config.tokenLifespans.refreshToken
  const refreshMax = options.config.tokenLifespans.refreshMax

  async function revokeUpstream(tsid: string, grantId?: string): Promise<void> {
    if (!options.onRevoke) return
    try {
      await options.onRevoke(tsid)
    } catch (err) {
      logger.error(
        { grant: grantId, tsid: fingerprint(tsid), err: (err as Error).message },
        'upstream token revocation failed',
      )
    }
  }

  async function revokeGrant(grantId: string, tsid: string, reason: string): Promise<void> {
    // The marker first: a token being issued concurrently for this grant checks it after joining
    // the group, so it is removed by one side or the other.
    await store.put(REVOKED_KIND, grantId, true, refreshTtl)
    await store.deleteGroup(groupOf(grantId))
    logger.warn({ grant: grantId, tsid: fingerprint(tsid), reason }, 'grant revoked')
    await revokeUpstream(tsid, grantId)
  }

  async function issueRefreshToken(family: RefreshFamily): Promise<string | undefined> {
    // No token outlives its family (tokenLifespans.refreshMax).
    const ttl = Math.min(refreshTtl, family.endsAt - now())
    if (!(ttl > 0)) return undefined
    const token = randomToken()
    const id = hashId(token)
    await store.put(REFRESH_KIND, id, family, ttl)
    await store.addToGroup(groupOf(family.grantId), REFRESH_KIND, id, ttl)
    if (await store.get<boolean>(REVOKED_KIND, family.grantId)) {
      await store.delete(REFRESH_KIND, id)
      return undefined
    }
    return token
  }

  return {
    revokeGrant,
    issueRefreshToken,

    async revokeRefreshToken(token, clientId) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return 'unknown'
      }
      const id = hashId(token)
      const family = await store.get<RefreshFamily>(REFRESH_KIND, id)
      const owner = family ?? (await store.get<UsedMarker>(USED_REFRESH_KIND, id))
      if (!owner?.clientId) return 'unknown'
      // RFC 7009 §2.1: the token must have been issued to the client making the request.
      if (owner.clientId !== clientId) return 'other-client'
      await revokeGrant(owner.grantId, owner.tsid, 'refresh token revoked by its client')
      return 'revoked'
    },

    async revokeSession(tsid, reason) {
      const grantId = await store.get<string>(SESSION_GRANT_KIND, tsid)
      if (grantId) return revokeGrant(grantId, tsid, reason)
      // No grant (its code was never issued): the upstream tokens still go.
      logger.warn({ tsid: fingerprint(tsid), reason }, 'session revoked')
      await revokeUpstream(tsid)
    },

    async issueCode(grant) {
      const grantId = randomBytes(16).toString('base64url')
      const code = randomToken()
      const id = hashId(code)
      const stored: StoredCode = { grantId, grant: { ...grant, issuedAt: now() } }
      await store.put(CODE_KIND, id, stored, codeTtl)
      await store.addToGroup(groupOf(grantId), CODE_KIND, id, codeTtl)
      // One code per tsid (each /oauth/authorize mints one); the family cannot outlive refreshMax.
      await store.put(SESSION_GRANT_KIND, grant.tsid, grantId, codeTtl + refreshMax)
      logger.debug(
        { client_id: grant.clientId, grant: grantId, code_fp: fingerprint(code) },
        'authorization code issued',
      )
      return code
    },

    async redeemCode(code, check) {
      if (typeof code !== 'string' || code.length === 0 || code.length > MAX_TOKEN_LENGTH) {
        return { status: 'invalid' }
      }
      const id = hashId(code)
      // Peek, check, then take: a request that fails the check (wrong client, redirect_uri or
      // verifier) leaves the code for its rightful holder.
      const stored = await store.get<StoredCode>(CODE_KIND, id)
      if (stored) {
        // RFC 6749 §4.1.2: codes are short-lived; the store's TTL rules, this is a backstop.
        if (now() - stored.grant.issuedAt > codeTtl) return { status: 'invalid' }
        const error = check(stored.grant)
        if (error) return { status: 'rejected', error }
        // Marker before take: a request racing this one sees either the code or the marker.
        await store.put(USED_CODE_KIND, id, stored satisfies UsedCode, codeTtl)
        // OAuth 2.1 §4.1.3: a code is used once; take is atomic, so of two racing requests one
        // wins, and the other is a second successful redemption: a replay.
        if (await store.take<StoredCode>(CODE_KIND, id)) {
          return { status: 'ok', grantId: stored.grantId, grant: stored.grant }
        }
      }
      const used = await store.get<UsedCode>(USED_CODE_KIND, id)
      if (!used) return { status: 'invalid' }
      // Only a use that would have succeeded is a replay: someone holding a leaked code without
      // its verifier must not be able to revoke the rightful client's tokens.
      const error = check(used.grant)
      if (error) return { status: 'rejected', error }
      // RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a replayed code revokes the tokens issued from it.
      await revokeGrant(used.grantId, used.grant.tsid, 'authorization code replayed')
      return { status: 'replayed' }
    },

    async rotateRefreshToken(token, check) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return { status: 'invalid' }
      }
      const id = hashId(token)
      const family = await store.get<RefreshFamily>(REFRESH_KIND, id)
      if (!family) {
        const used = await store.get<UsedMarker>(USED_REFRESH_KIND, id)
        if (!used) return { status: 'invalid' }
        // RFC 9700 §4.14.2: a rotated refresh token presented again means one of its holders is
        // an attacker; not knowing which, revoke the whole family.
        await revokeGrant(used.grantId, used.tsid, 'rotated refresh token reused')
        return { status: 'reused' }
      }
      // tokenLifespans.refreshMax: the family ends, however recently it rotated.
      if (!(now() < family.endsAt)) {
        await revokeGrant(family.grantId, family.tsid, 'refresh family reached refreshMax')
        return { status: 'invalid' }
      }
      const error = check(family)
      if (error) return { status: 'rejected', error }
      // Marker before take: a request racing this one sees either the token or the marker.
      const marker: UsedMarker = {
        grantId: family.grantId,
        tsid: family.tsid,
        clientId: family.clientId,
      }
      await store.put(USED_REFRESH_KIND, id, marker, refreshTtl)
      if (!(await store.take<RefreshFamily>(REFRESH_KIND, id))) {
        // Rotated by a concurrent request between our read and our take: that is reuse too.
        await revokeGrant(family.grantId, family.tsid, 'refresh token used concurrently')
        return { status: 'reused' }
      }
      // RFC 9700 §4.14.2: rotation, a new refresh token on every use.
      const refreshToken = await issueRefreshToken(family)
      if (!refreshToken) return { status: 'invalid' }
      return { status: 'ok', family, refreshToken }
    },
  }
}
