import { randomBytes } from 'node:crypto'
import { Hono } from 'hono'
import type { JWTVerifyGetKey } from 'jose'
import { decodeKey, type AuthServerConfig } from '../config/index.js'
import {
  CLIENT_METADATA_PATH,
  createDcrManager,
  createDcrStoreFromConfig,
  dcrUpstreamSpecs,
  type DcrCredentialStore,
  type DcrManager,
  type DcrTuning,
} from '../dcr/index.js'
import type { Logger } from '../log/index.js'
import { createOutboundFetch, type FetchLike } from '../net/index.js'
import { createSealedStore, createSealer, createStore, type Store } from '../storage/index.js'
import { createAuthorizeApp } from './authorize-endpoint.js'
import { createCallbackApp } from './callback-endpoint.js'
import { createBrowserCookies } from './consent.js'
import { createClientRegistry } from './clients.js'
import type { UpstreamTokenSource } from './contracts.js'
import { createGrantStore } from './grants.js'
import { loadSigningKeys, type SigningKeys } from './keys.js'
import { authServerPaths, authServerUrls, createMetadataApp, issuerPath } from './metadata.js'
import { createPendingLimit } from './pending-limit.js'
import { createRateLimiter, type ClientIpResolver } from './rate-limit.js'
import { createRegisterEndpoint } from './register-endpoint.js'
import { createRevocationEndpoint } from './revocation-endpoint.js'
import { createTokenEndpoint, type TokenMetrics } from './token-endpoint.js'
import { createUpstreamClients } from './upstreams.js'
import { createUpstreamTokenStore } from './upstream-tokens.js'

export interface AuthServerOptions {
  config: AuthServerConfig
  logger: Logger
  /** Fetch for upstream identity providers (operator-configured URLs, loopback allowed). */
  fetch?: FetchLike
  /** Fetch for Client ID Metadata Documents (client-supplied URLs: SSRF-guarded by default). */
  cimdFetch?: FetchLike
  /** A store to use instead of the configured one (tests). */
  store?: Store
  clientIp?: ClientIpResolver
  /** Registration lifecycle knobs (clock, backoff, timeouts) and a store to use instead (tests). */
  dcr?: DcrTuning & { store?: DcrCredentialStore }
  /** Counts token responses by grant type and refusals by error code. */
  metrics?: TokenMetrics
}

/** The embedded authorization server: its routes plus what the rest of vmcp needs from it. */
export interface AuthServer {
  /** Hono sub-app: RFC 8414/OIDC metadata, JWKS, /oauth/authorize|callback|token|revoke|register. */
  readonly app: Hono
  readonly keys: SigningKeys
  /** In-process key lookup for validating vmcp's own tokens. */
  readonly getKey: JWTVerifyGetKey
  /** Upstream tokens by tsid, refreshed as needed: feeds identity.upstreamTokens. */
  readonly upstreamTokens: UpstreamTokenSource
  readonly store: Store
  /** Registrations of the `dcr` upstreams; undefined when none registers itself. */
  readonly dcr: DcrManager | undefined
  close(): Promise<void>
}

/**
 * Builds the Mode B authorization server from `authServer.runConfig`. Loads (or generates) the
 * signing keys and connects storage; touches no upstream until a user signs in.
 */
export async function createAuthServer(options: AuthServerOptions): Promise<AuthServer> {
  const { config, logger } = options
  const fetch = options.fetch ?? createOutboundFetch()
  const plainStore =
    options.store ??
    createStore(
      {
        type: config.storage.type,
        ...(config.storage.redis
          ? {
              redis: {
                url:
                  typeof config.storage.redis.url === 'string'
                    ? config.storage.redis.url
                    : config.storage.redis.url.reveal(),
                keyPrefix: config.storage.redis.keyPrefix,
              },
            }
          : {}),
        maxEntries: config.storage.maxEntries,
      },
      logger,
    )
  // Memory storage without a configured key: tokens never leave the process, a random key will do.
  const key = config.storage.encryptionKey ? decodeKey(config.storage.encryptionKey.reveal()) : randomBytes(32)
  if (!key) throw new Error('authServer.runConfig.storage.encryptionKey must be 32 bytes')
  const sealer = createSealer(key)
  // Every AS record in Redis (code grants, refresh families, pending authorizations with their
  // upstream PKCE verifiers, client registrations) is sealed with AAD = its key, so write access
  // to Redis cannot forge, edit or move one. Memory storage never leaves the process.
  const store =
    plainStore.type === 'redis'
      ? createSealedStore({
          store: plainStore,
          sealer,
          logger,
          keyPrefix: config.storage.redis?.keyPrefix ?? '',
        })
      : plainStore
  const keys = await loadSigningKeys(config, logger)

  // RFC 7591 upstreams register in the background: startup never waits for them.
  const dcrSpecs = dcrUpstreamSpecs(config)
  let dcr: DcrManager | undefined
  if (dcrSpecs.length > 0) {
    const { store: dcrStore, ...tuning } = options.dcr ?? {}
    dcr = createDcrManager({
      store: dcrStore ?? (await createDcrStoreFromConfig(config, logger)),
      fetch,
      logger,
      issuer: config.issuer,
      upstreams: dcrSpecs,
      ...tuning,
    })
    dcr.start()
  }
  const upstreams = createUpstreamClients(config.upstreams, {
    fetch,
    logger,
    // Where the callback app is served (authServerPaths): the issuer's path included.
    callbackUrl: authServerUrls(config.issuer).callback,
    ...(dcr ? { dcr } : {}),
  })
  const tokens = createUpstreamTokenStore({
    store,
    sealer,
    upstreams,
    logger,
    // A revoked session's marker must outlive any row of it (rows live at most refreshToken).
    revokedTtlMs: config.tokenLifespans.refreshToken,
  })
  const clients = createClientRegistry({
    store,
    config,
    logger,
    ...(options.cimdFetch ? { fetch: options.cimdFetch } : {}),
  })
  const baseGrants = createGrantStore({ store, config, logger, onRevoke: (tsid) => tokens.revoke(tsid) })
  // A used refresh token extends the user's session: keep the upstream tokens as long as it lives,
  // never past the family's end (tokenLifespans.refreshMax).
  const grants: typeof baseGrants = {
    ...baseGrants,
    async rotateRefreshToken(token, check) {
      const rotation = await baseGrants.rotateRefreshToken(token, check)
      if (rotation.status === 'ok') {
        const { tsid, endsAt } = rotation.family
        const ttl = Math.min(config.tokenLifespans.refreshToken, endsAt - Date.now())
        await tokens.extend(tsid, ttl)
      }
      return rotation
    },
  }
  const ip = options.clientIp ? { clientIp: options.clientIp } : {}
  const cookies = createBrowserCookies({
    issuer: config.issuer,
    sealer,
    rememberForMs: config.consent.rememberFor,
  })

  const paths = authServerPaths(config.issuer)
  const limit = (name: 'authorize' | 'callback') =>
    createRateLimiter({ store, name, limit: config.rateLimits[name], logger, ...ip })
  const admitPending = createPendingLimit({
    store: plainStore,
    ttlMs: config.tokenLifespans.authCode,
    maxPerAddress: config.pendingAuthorizations.maxPerAddress,
    maxTotal: config.pendingAuthorizations.maxTotal,
    logger,
    ...ip,
  })

  const app = new Hono()
  // Before the routes, so a flood is answered 429 before any client lookup or upstream work.
  app.use(paths.authorize, limit('authorize'))
  app.use(paths.callback, limit('callback'))
  app.route('/', createMetadataApp({ config, keys, cimdEnabled: config.cimd.enabled }))
  const metadataDocument = dcr?.clientMetadataDocument()
  if (metadataDocument && dcrSpecs.some((u) => u.dcr.preferClientMetadataDocument)) {
    // The client ID metadata document upstreams fetch when vmcp uses its URL as client_id.
    app.get(`${issuerPath(config.issuer)}${CLIENT_METADATA_PATH}`, (c) => c.json(metadataDocument, 200, { 'cache-control': 'max-age=300' }))
  }
  app.route(
    '/',
    createAuthorizeApp({
      config,
      registry: clients,
      upstreams,
      store,
      cookies,
      logger,
      admitPending,
    }),
  )
  app.route(
    '/',
    createCallbackApp({ config, upstreams, store, tokens, codeIssuer: grants, cookies, logger }),
  )
  const tokenMetrics = options.metrics ? { metrics: options.metrics } : {}
  app.route('/', createTokenEndpoint({ config, keys, clients, grants, store, logger, ...ip, ...tokenMetrics }))
  app.route('/', createRevocationEndpoint({ config, keys, clients, grants, store, logger, ...ip }))
  app.route('/', createRegisterEndpoint({ config, clients, store, logger, ...ip }))

  return {
    app,
    keys,
    getKey: keys.getKey,
    upstreamTokens: tokens,
    store,
    dcr,
    async close() {
      await dcr?.close()
      await store.close()
    },
  }
}
