/**
 * Backends from private MCP registries (MCP Registry API v0.1) behind OAuth: the sign-in
 * (`vmcp registry login`), the sealed token store under stateDir, and the non-interactive token
 * source `vmcp serve` uses. Nothing here opens a browser except `loginRegistry`.
 */
export { createRegistryOAuth, registryScope, type RegistryOAuth, type RegistryOAuthOptions } from './oauth.js'
export { loginRegistry, logoutRegistry, RegistryLoginError, type RegistryLoginOptions } from './login.js'
export {
  createRegistryTokenSource,
  RegistryAuthRequiredError,
  type RegistryTokenSource,
  type RegistryTokenSourceOptions,
} from './token-source.js'
export {
  createFileRegistryTokenStore,
  createStoreRegistryTokenStore,
  REGISTRY_KEY_FILE,
  REGISTRY_TOKENS_FILE,
  registryListingKey,
  registryTokenKey,
  type FileRegistryTokenStoreOptions,
  type RegistryListingSummary,
  type StoreRegistryTokenStoreOptions,
  type RegistryTokens,
  type RegistryTokenStore,
} from './token-store.js'
export { createRegistryTokenStoreFromConfig } from './from-config.js'
export {
  buildRegistryBackends,
  listRegistryServers,
  matchesGlob,
  RegistryListError,
  type ListRegistryOptions,
  type RegistryBackends,
  type RegistryFailure,
  type RegistryServer,
} from './listing.js'
export {
  createRegistryPoller,
  type RegistryBackendSink,
  type RegistryPoller,
  type RegistryPollerOptions,
  type RegistryStatus,
} from './poller.js'
