import { spawn } from 'node:child_process'
import type { RegistryConfig, VmcpConfig } from '../config/index.js'
import { createLogger } from '../log/index.js'
import { createOutboundFetch } from '../net/index.js'
import {
  createRegistryOAuth,
  createRegistryTokenStoreFromConfig,
  loginRegistry,
  logoutRegistry,
  registryTokenKey,
  type RegistryTokenStore,
} from '../registry/index.js'

export interface RegistryCommandOptions {
  registry: string | undefined
  noBrowser: boolean
  out: (line: string) => void
  err: (line: string) => void
}

function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]]
  const child = spawn(cmd, args as string[], { stdio: 'ignore', detached: true })
  child.on('error', () => undefined)
  child.unref()
}

/**
 * `vmcp registry login|logout|status`: sign in to a registry's IdP (PKCE, loopback redirect),
 * forget the sign-in (revoking the refresh token), or show each registry's sign-in. Prints no
 * token. Resolves with the exit code.
 */
export async function runRegistryCommand(config: VmcpConfig, sub: string | undefined, options: RegistryCommandOptions): Promise<number> {
  const { out, err } = options
  if (sub !== 'login' && sub !== 'logout' && sub !== 'status') {
    err(`vmcp: registry needs a subcommand: login, logout or status (got ${sub === undefined ? 'none' : `"${sub}"`})`)
    return 2
  }
  const logger = createLogger({ level: 'warn' })
  const fetch = createOutboundFetch()
  if (sub === 'status') {
    if (config.registries.length === 0) {
      out('no registries configured')
      return 0
    }
    const store = await createRegistryTokenStoreFromConfig(config, logger)
    try {
      for (const r of config.registries) out([r.name, r.url, ...(await statusOf(r, store))].join('\t'))
      return 0
    } catch (e) {
      err(`vmcp: registry status failed: ${(e as Error).message}`)
      return 1
    } finally {
      await store.close()
    }
  }
  const registry = config.registries.find((r): r is RegistryConfig & { auth: NonNullable<RegistryConfig['auth']> } => r.name === options.registry && !!r.auth)
  if (!options.registry || !registry) {
    const names = config.registries.filter((r) => r.auth).map((r) => r.name)
    err(`vmcp: registry ${sub} needs --registry NAME of a registry with auth (configured: ${names.join(', ') || 'none'})`)
    return 2
  }
  const o = createRegistryOAuth({ auth: registry.auth, fetch })
  const store = await createRegistryTokenStoreFromConfig(config, logger)
  try {
    if (sub === 'logout') {
      const { found, revoked } = await logoutRegistry({ registry, oauth: o, store })
      out(found ? `signed out of registry ${registry.name}${revoked ? ' (refresh token revoked)' : ''}` : `not signed in to registry ${registry.name}`)
      return 0
    }
    const { signedInAs } = await loginRegistry({
      registry,
      oauth: o,
      store,
      onAuthorizationUrl: (url) => {
        if (options.noBrowser) {
          // Alone on one line, so a script (or a person) can take it as it is.
          out(url)
          return
        }
        err(`opening your browser; if nothing happens, open this URL:\n${url}`)
        openBrowser(url)
      },
    })
    out(`signed in to registry ${registry.name} as ${signedInAs ?? '(unknown)'}`)
    return 0
  } catch (e) {
    err(`vmcp: registry ${sub} failed: ${(e as Error).message}`)
    return 1
  } finally {
    await store.close()
    logger.flush()
  }
}

/** What `status` says of one registry: its sign-in, then what serve last listed. */
async function statusOf(r: RegistryConfig, store: RegistryTokenStore): Promise<string[]> {
  const summary = await store.getListing(r.url)
  const listing = summary
    ? `last listing ${summary.at}: ${summary.servers} server(s), ${summary.backends.length} backend(s)`
    : 'not listed yet (vmcp serve lists it)'
  if (!r.auth) return ['no sign-in needed', listing]
  const t = await store.get(registryTokenKey(r.url, r.auth.issuer))
  if (!t) return [`not signed in: run 'vmcp registry login --registry ${r.name}'`, listing]
  const expiry = t.expiresAt > Date.now() ? `access token valid until ${new Date(t.expiresAt).toISOString()}` : 'access token expired'
  return [`signed in as ${t.signedInAs ?? '(unknown)'}`, `${expiry}${t.refreshToken ? ', refreshable' : ''}`, listing]
}
