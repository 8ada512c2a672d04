import { createOutgoingAuth } from '../auth/outgoing/index.js'
import { strategyOf, type VmcpConfig } from '../config/index.js'
import { createLogger } from '../log/index.js'
import { createGateway } from '../mcp/index.js'
import { createOutboundFetch } from '../net/index.js'
import { readVersion } from '../version.js'

/**
 * `vmcp tools --config F`: connects to the configured backends as `serve` does (launching what it
 * launches), prints every exposed tool name with its backend, then stops everything. Nothing
 * listens. Backends that are down, or whose tools depend on the signed-in user, are named on
 * stderr. Resolves with the exit code: 0, or 1 when no backend could be listed.
 */
export async function runToolsCommand(
  config: VmcpConfig,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const logger = createLogger({ level: 'warn' })
  const fetch = createOutboundFetch()
  const gateway = createGateway({
    config,
    logger,
    fetch,
    version: readVersion(),
    outgoingAuth: (name) => createOutgoingAuth(strategyOf(config, name), { backend: name, logger, fetch }),
  })
  try {
    await gateway.start()
    const tools = gateway.exposedTools()
    const header = { name: 'TOOL', backend: 'BACKEND', tool: 'BACKEND TOOL' }
    const rows = [header, ...tools]
    const width = (key: 'name' | 'backend') => Math.max(...rows.map((r) => r[key].length))
    const [w1, w2] = [width('name'), width('backend')]
    for (const r of rows) out(`${r.name.padEnd(w1)}  ${r.backend.padEnd(w2)}  ${r.tool}`.trimEnd())
    const status = gateway.status()
    for (const b of status.backends) {
      if (b.health === 'per-user') err(`${b.name}: tools depend on the signed-in user; not listed`)
      else if (b.health !== 'healthy') err(`${b.name}: ${b.health}${b.error ? `: ${b.error}` : ''}`)
    }
    if (config.registries.length > 0) err('backends from registries are not listed (they join at serve time)')
    const listed = status.backends.some((b) => b.health === 'healthy')
    return listed || status.backends.length === 0 ? 0 : 1
  } finally {
    await gateway.close()
  }
}
