import { decodeKey, type AuthServerConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { DcrUpstreamSpec } from './manager.js'
import { createFileDcrStore, createRedisDcrStore } from './stores.js'
import type { DcrCredentialStore } from './types.js'

/** The upstreams of `authServer.runConfig` that register themselves (`dcr` set). */
export function dcrUpstreamSpecs(config: AuthServerConfig): DcrUpstreamSpec[] {
  return config.upstreams.flatMap((u): DcrUpstreamSpec[] => {
    const c = u.type === 'oidc' ? u.oidc : u.oauth2
    if (!c.dcr) return []
    // OIDC Core §3.1.2.1: an oidc upstream always asks for openid (as its client does).
    const scopes =
      u.type === 'oidc' && !c.scopes.includes('openid') ? ['openid', ...c.scopes] : c.scopes
    const {
      initialAccessToken,
      softwareStatement,
      softwareId,
      tokenEndpointAuthMethod,
      discoveryUrl,
      registrationEndpoint,
      ...rest
    } = c.dcr
    return [
      {
        name: u.name,
        scopes,
        dcr: {
          ...rest,
          ...(discoveryUrl !== undefined ? { discoveryUrl } : {}),
          ...(registrationEndpoint !== undefined ? { registrationEndpoint } : {}),
          ...(initialAccessToken ? { initialAccessToken } : {}),
          ...(softwareStatement ? { softwareStatement } : {}),
          ...(softwareId !== undefined ? { softwareId } : {}),
          ...(tokenEndpointAuthMethod !== undefined ? { tokenEndpointAuthMethod } : {}),
        },
        ...(u.type === 'oauth2' && u.oauth2.authorizationEndpoint
          ? { authorizationEndpoint: u.oauth2.authorizationEndpoint }
          : {}),
        ...(u.type === 'oauth2' && u.oauth2.tokenEndpoint
          ? { tokenEndpoint: u.oauth2.tokenEndpoint }
          : {}),
      },
    ]
  })
}

/**
 * The registration store that matches the auth server's storage: Redis (shared by replicas) with
 * Redis storage, else one sealed file under dataDir, so a restart never registers again.
 */
export async function createDcrStoreFromConfig(
  config: AuthServerConfig,
  logger: Logger,
): Promise<DcrCredentialStore> {
  const configured = config.storage.encryptionKey
    ? decodeKey(config.storage.encryptionKey.reveal())
    : undefined
  if (config.storage.type === 'redis' && config.storage.redis) {
    const url = config.storage.redis.url
    if (!configured) throw new TypeError('redis storage needs storage.encryptionKey')
    return createRedisDcrStore({
      url: typeof url === 'string' ? url : url.reveal(),
      keyPrefix: config.storage.redis.keyPrefix,
      key: configured,
      logger,
    })
  }
  return createFileDcrStore({
    dataDir: config.dataDir,
    logger,
    ...(configured ? { key: configured } : {}),
  })
}
