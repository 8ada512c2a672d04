import { Hono } from 'hono'
import type { AuthServerConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import type { Store } from '../storage/index.js'
import {
  beginUpstreamLeg,
  buildClientRedirect,
  PENDING_AUTHORIZATION_KIND,
  pendingId,
  redirectTo,
  renderOAuthError,
  renderOtherBrowser,
  storageDown,
  type PendingAuthorization,
} from './authorize-endpoint.js'
import { sameDigest, type BrowserCookies } from './consent.js'
import type { CodeIssuer } from './contracts.js'
import { authServerPaths } from './metadata.js'
import type { UpstreamTokenStore } from './upstream-tokens.js'
import {
  describeError,
  UpstreamAuthError,
  type UpstreamClient,
  type UpstreamTokenSet,
} from './upstreams.js'

/** The parts of `authServer.runConfig` the callback endpoint reads. */
export type CallbackConfig = Pick<AuthServerConfig, 'issuer' | 'tokenLifespans'>

export interface CallbackAppOptions {
  config: CallbackConfig
  /** Upstream clients in chain order, the same list the authorize app got. */
  upstreams: readonly UpstreamClient[]
  store: Store
  tokens: UpstreamTokenStore
  codeIssuer: CodeIssuer
  /** The browser binding set by /oauth/authorize. */
  cookies: BrowserCookies
  logger: Logger
}

/** A chain failure: what the client is told, and what only the log hears. */
class ChainError extends Error {
  constructor(
    readonly reason: 'access_denied' | 'server_error' | 'temporarily_unavailable',
    readonly description: string,
    detail: string,
  ) {
    super(detail)
  }
}

/**
 * `GET /oauth/callback`: the return from each upstream leg. Redeems the upstream code, stores that
 * upstream's tokens under (tsid, upstream), then either starts the next leg or, after the last,
 * issues vmcp's authorization code to the client (with `state` and RFC 9207 `iss`).
 *
 * Any failure after the pending authorization is found deletes every upstream token of the
 * session and sends the client `access_denied` (the upstream refused) or `server_error`.
 * An unknown, expired or replayed `state` is a 400: there is no client to send it to. So is a
 * callback from another browser than the one that started the sign-in (its transaction cookie):
 * that answer leaves the pending authorization in place for the browser it belongs to.
 */
export function createCallbackApp(options: CallbackAppOptions): Hono {
  const { config, upstreams, store, tokens, codeIssuer, cookies } = options
  const log = options.logger.child({ component: 'authserver.callback' })
  const legTtlMs = config.tokenLifespans.authCode
  // A leg's tokens are kept only as long as the rest of the chain may take (each leg gets a fresh
  // pending TTL); the completed chain extends them to the session's lifetime.
  const partialTtlMs = legTtlMs * Math.max(1, upstreams.length)
  const sessionTtlMs = config.tokenLifespans.refreshToken
  const app = new Hono()

  app.get(authServerPaths(config.issuer).callback, async (c) => {
    const url = new URL(c.req.url)
    // Parameter names only: their values are codes and states.
    log.trace({ params: [...url.searchParams.keys()] }, 'upstream callback received')
    const states = url.searchParams.getAll('state')
    const state = states[0]
    if (states.length !== 1 || state === undefined || state === '') {
      return renderOAuthError(c, 400, 'invalid_request', 'missing state parameter')
    }
    const id = pendingId(state)
    let pending: PendingAuthorization | undefined
    try {
      // Read first: a callback from a foreign browser must not use up the real user's sign-in.
      const found = await store.get<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, id)
      // The state alone names the sign-in, and an attacker can hand his upstream URL to a victim:
      // only the browser holding the transaction cookie may finish it (RFC 9700 §4.7.1, CSRF).
      if (found && !sameDigest(cookies.bindingOf(c), found.browser)) {
        log.warn(
          { tsidFp: fingerprint(found.tsid) },
          'upstream callback from another browser; refused',
        )
        return renderOtherBrowser(c)
      }
      // Single use per leg: of concurrent or replayed callbacks, exactly one finds it.
      pending = found && (await store.take<PendingAuthorization>(PENDING_AUTHORIZATION_KIND, id))
    } catch (err) {
      return storageDown(c, err)
    }
    if (!pending) {
      const why = 'authorization request not found or expired'
      return renderOAuthError(c, 400, 'invalid_request', why)
    }

    const { tsid } = pending
    const tsidFp = fingerprint(tsid)
    // RFC 9207 §2: `iss` on every authorization response; RFC 6749 §4.1.2: the client's state.
    const toClient = (params: Record<string, string | undefined>) => {
      const all = { ...params, state: pending.state, iss: config.issuer }
      return redirectTo(c, buildClientRedirect(pending.redirectUri, all))
    }
    const broken = (detail: string) => new ChainError('server_error', 'sign-in failed', detail)

    const upstream = upstreams[pending.upstreamIndex]
    try {
      if (!upstream) throw broken('pending leg has no upstream')
      const leg = pending.legs[upstream.name]
      if (!leg) throw broken(`pending leg has no secrets for ${upstream.name}`)

      let set: UpstreamTokenSet
      try {
        set = await upstream.exchangeCode(url, { state, ...leg })
      } catch (err) {
        const denied = err instanceof UpstreamAuthError && err.reason === 'access_denied'
        throw denied
          ? new ChainError(
              'access_denied',
              `upstream ${upstream.name} denied the authorization`,
              err.message,
            )
          : new ChainError(
              'server_error',
              `sign-in at upstream ${upstream.name} failed`,
              describeError(err),
            )
      }

      const next: PendingAuthorization = { ...pending, legs: {} }
      if (pending.upstreamIndex === 0) {
        // The first upstream decides who the user is (issue 3: upstreams[0] decides `sub`).
        if (set.subject === undefined) {
          throw new ChainError(
            'server_error',
            `upstream ${upstream.name} did not identify the user`,
            'no subject from the first upstream',
          )
        }
        next.subject = set.subject
        if (set.name !== undefined) next.name = set.name
        if (set.email !== undefined) next.email = set.email
        if (set.issuer !== undefined) next.identityIssuer = set.issuer
      } else if (
        set.issuer !== undefined &&
        set.issuer === pending.identityIssuer &&
        set.subject !== pending.subject
      ) {
        // Identity continuity: the same IdP must not vouch for a different user mid-chain.
        throw new ChainError(
          'server_error',
          'the upstream sign-ins are for different users',
          `identity continuity failed at ${upstream.name}`,
        )
      }

      await tokens.save(tsid, upstream.name, set, partialTtlMs)

      // tsid is fresh per /oauth/authorize, so every later upstream still lacks a token: the next
      // one in the chain is the next without one.
      const following = upstreams[pending.upstreamIndex + 1]
      if (following) {
        next.upstreamIndex = pending.upstreamIndex + 1
        const location = await beginUpstreamLeg(store, following, next, legTtlMs)
        log.debug({ tsidFp, from: upstream.name, to: following.name }, 'upstream leg done')
        return redirectTo(c, location.href)
      }

      await tokens.extend(tsid, sessionTtlMs)
      const subject = next.subject
      if (subject === undefined) throw broken('chain ended without a subject')
      const code = await codeIssuer.issueCode({
        clientId: pending.clientId,
        redirectUri: pending.redirectUri,
        codeChallenge: pending.codeChallenge,
        scope: pending.scope,
        resource: pending.resource,
        subject,
        tsid,
        ...(pending.nonce !== undefined ? { nonce: pending.nonce } : {}),
        ...(next.name !== undefined ? { name: next.name } : {}),
        ...(next.email !== undefined ? { email: next.email } : {}),
      })
      log.info(
        { tsidFp, clientId: pending.clientId, upstreams: upstreams.length },
        'upstream chain complete; code issued',
      )
      return toClient({ code })
    } catch (err) {
      // An upstream still registering (RFC 7591) or whose secret expired: say which, and that it
      // is temporary (RFC 6749 §4.1.2.1 temporarily_unavailable).
      const unavailable = err instanceof UpstreamAuthError && err.unavailable
      const failure =
        err instanceof ChainError
          ? err
          : unavailable
            ? new ChainError('temporarily_unavailable', `${err.message}; try again later`, err.message)
            : broken(describeError(err))
      log.warn(
        {
          tsidFp,
          clientId: pending.clientId,
          upstream: upstream?.name,
          reason: failure.reason,
          detail: failure.message,
        },
        'upstream chain failed',
      )
      try {
        await tokens.revoke(tsid)
      } catch (revokeErr) {
        // Rows still expire with their (short, partial-chain) TTL.
        const detail = describeError(revokeErr)
        log.error({ tsidFp, err: detail }, 'could not delete the failed chain tokens')
      }
      return toClient({ error: failure.reason, error_description: failure.description })
    }
  })

  return app
}
