import { decodeKey, type VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import { deriveRequestStateKey } from '../mcp/index.js'
import { MCP_PATH } from './app.js'

/**
 * How this process seals the requestState of 2026-07-28 input round trips: replicas behind one
 * load balancer must open each other's, so the key comes from material they share:
 * `server.requestStateKey`, else Mode B's `storage.encryptionKey` (replicas share it with their
 * Redis). Without either the key is per process: a retry that lands on another replica is
 * refused. The audience is this deployment's MCP URL (its name when there is no publicUrl).
 */
export function requestStateSealing(config: VmcpConfig, logger: Logger): { key?: Uint8Array; audience: string } {
  const audience = config.server.publicUrl ? `${config.server.publicUrl}${MCP_PATH}` : `urn:vmcp:${config.name}`
  const configured = config.server.requestStateKey
  const modeB = config.authServer?.runConfig.storage.encryptionKey
  const material = configured
    ? new TextEncoder().encode(configured.reveal())
    : modeB
      ? decodeKey(modeB.reveal())
      : undefined
  const source = configured ? 'server.requestStateKey' : material ? 'authServer storage.encryptionKey' : 'per process'
  logger.debug({ source }, 'requestState key')
  return { ...(material ? { key: deriveRequestStateKey(material) } : {}), audience }
}
