/**
 * vmcp as an RFC 7591 client of its upstream authorization servers: discovery, registration,
 * RFC 7592 renewal and the narrow credential store. Other domains import only from here.
 */

/**
 * The registration lifecycle of every `dcr` upstream: cache lookup by (issuer, redirect_uri,
 * scopes_hash), RFC 8414 discovery (issuer equality), RFC 7591 registration, RFC 7592 renewal on
 * a timer with one renewal per expiry (store lock), invalid_client recovery. `start()` returns at
 * once: registration happens in the background and failures are retried with backoff, the
 * upstream unavailable (DcrUnavailableError from `client()`) meanwhile. Call `close()` on shutdown.
 */
export {
  CLIENT_METADATA_PATH,
  createDcrManager,
  type DcrClient,
  type DcrManager,
  type DcrManagerOptions,
  type DcrSettings,
  type DcrTuning,
  type DcrUpstream,
  type DcrUpstreamSpec,
  type DcrUpstreamState,
} from './manager.js'

/** Errors: DcrError (a failed step, operator-facing message), DcrUnavailableError (user-facing). */
export { DcrError, DcrUnavailableError, type DcrStep } from './errors.js'

/** The cache key parts: SHA-256 of sorted unique scopes, and the issuer a discovery URL expects. */
export { dcrKeyId, discoveryTarget, scopesHash } from './cache-key.js'

/** RFC 8414 discovery with oauth4webapi: path-inserted, then OpenID form; issuer must match. */
export { discoverServer } from './discovery.js'

/** RFC 7591 registration (oauth4webapi) and RFC 7592 update (PUT with the registration token). */
export {
  chooseAuthMethod,
  registerClient,
  renewClient,
  type RegisterOptions,
} from './registration.js'

/**
 * Stores: memory (process lifetime), file (one sealed JSON file under dataDir, 0600, atomic
 * writes, key from storage.encryptionKey or generated once beside it) and Redis (shared by
 * replicas; lock for renewals). Secrets are sealed with AES-256-GCM in the file and Redis stores.
 */
export {
  createFileDcrStore,
  createMemoryDcrStore,
  createRedisDcrStore,
  DCR_FILE,
  DCR_KEY_FILE,
  type FileDcrStoreOptions,
  type RedisDcrStoreOptions,
} from './stores.js'

/** From `authServer.runConfig`: the registering upstreams, and the store matching its storage. */
export { createDcrStoreFromConfig, dcrUpstreamSpecs } from './from-config.js'

export type {
  DcrCredentials,
  DcrCredentialStore,
  DcrKey,
  DcrServerMetadata,
  TokenEndpointAuthMethod,
} from './types.js'
