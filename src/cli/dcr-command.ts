import type { VmcpConfig } from '../config/index.js'
import { createDcrStoreFromConfig } from '../dcr/index.js'
import { createLogger } from '../log/index.js'

const DAY_MS = 24 * 3600 * 1000

/**
 * `vmcp dcr list` and `vmcp dcr forget --upstream NAME`: inspect or clear the registrations vmcp
 * keeps for its `dcr` upstreams (file under dataDir, or Redis). Prints no secret. Resolves with the
 * exit code.
 */
export async function runDcrCommand(
  config: VmcpConfig,
  sub: string | undefined,
  upstream: string | undefined,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const rc = config.authServer?.runConfig
  if (!rc) {
    err('vmcp: this configuration has no authServer.runConfig, so no dynamic registrations')
    return 2
  }
  if (sub !== 'list' && sub !== 'forget') {
    err(
      `vmcp: dcr needs a subcommand: list or forget (got ${sub === undefined ? 'none' : `"${sub}"`})`,
    )
    return 2
  }
  if (sub === 'forget' && !upstream) {
    err('vmcp: dcr forget needs --upstream NAME')
    return 2
  }
  const logger = createLogger({ level: 'warn' })
  const store = await createDcrStoreFromConfig(rc, logger)
  try {
    const entries = await store.list()
    if (sub === 'list') {
      if (entries.length === 0) {
        out('no cached registrations')
        return 0
      }
      out(['UPSTREAM', 'ISSUER', 'CLIENT_ID', 'AGE', 'SECRET_EXPIRES'].join('\t'))
      for (const e of entries.sort((a, b) => a.upstream.localeCompare(b.upstream))) {
        const age = `${Math.floor((Date.now() - e.createdAt) / DAY_MS)}d`
        const expires = e.clientSecretExpiresAt
          ? new Date(e.clientSecretExpiresAt * 1000).toISOString()
          : 'never'
        out([e.upstream, e.server.issuer, e.clientId, age, expires].join('\t'))
      }
      return 0
    }
    const mine = entries.filter((e) => e.upstream === upstream)
    if (mine.length === 0) {
      err(
        `vmcp: no cached registration for upstream "${upstream}" (cached: ${[...new Set(entries.map((e) => e.upstream))].join(', ') || 'none'})`,
      )
      return 1
    }
    for (const e of mine) await store.delete(e.key)
    out(
      `forgot ${mine.length} registration(s) of upstream ${upstream} (client_id ${mine.map((e) => e.clientId).join(', ')}); ` +
        'restart vmcp to register again',
    )
    return 0
  } finally {
    await store.close()
    logger.flush()
  }
}
