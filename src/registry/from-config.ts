import { decodeKey, type VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import { createStore } from '../storage/index.js'
import { createFileRegistryTokenStore, createStoreRegistryTokenStore, type RegistryTokenStore } from './token-store.js'

/**
 * The sign-in store of a configuration. With Redis storage (`authServer.runConfig.storage`), the
 * sign-ins live in Redis, sealed with `storage.encryptionKey` (required there), so replicas and the
 * CLI share them; otherwise a sealed file under `stateDir`, keyed with `encryptionKey` when set,
 * else with a key generated once there. The caller closes it.
 */
export function createRegistryTokenStoreFromConfig(config: VmcpConfig, logger: Logger): Promise<RegistryTokenStore> {
  const storage = config.authServer?.runConfig.storage
  const text = storage?.encryptionKey?.reveal()
  const key = text ? decodeKey(text) : undefined
  if (storage?.type === 'redis' && storage.redis && key) {
    const { url, keyPrefix } = storage.redis
    const store = createStore({ type: 'redis', redis: { url: typeof url === 'string' ? url : url.reveal(), keyPrefix } }, logger)
    return Promise.resolve(createStoreRegistryTokenStore({ store, key, logger }))
  }
  return createFileRegistryTokenStore({ stateDir: config.stateDir, logger, ...(key ? { key } : {}) })
}
