import { decodeKey, type VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import { createFileRegistryTokenStore, type RegistryTokenStore } from './token-store.js'

/**
 * The sign-in store of a configuration: sealed file under `stateDir`, keyed with
 * `authServer.runConfig.storage.encryptionKey` when set, else with a key generated once there.
 */
export function createRegistryTokenStoreFromConfig(config: VmcpConfig, logger: Logger): Promise<RegistryTokenStore> {
  const text = config.authServer?.runConfig.storage.encryptionKey?.reveal()
  const key = text ? decodeKey(text) : undefined
  return createFileRegistryTokenStore({ stateDir: config.stateDir, logger, ...(key ? { key } : {}) })
}
