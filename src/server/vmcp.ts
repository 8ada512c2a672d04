import { createServer, type IncomingMessage, type RequestListener, type ServerOptions, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve, type ServerType } from '@hono/node-server'
import type { Hono } from 'hono'
import {
  createAnonymousAuthenticator,
  createOidcAuthenticator,
  withUpstreamTokens,
  type IncomingAuthenticator,
} from '../auth/incoming/index.js'
import {
  createAuthServer,
  createClientIpResolver,
  type AuthServer,
  type AuthServerOptions,
} from '../authserver/index.js'
import { createOutgoingAuth, type OutgoingAuthStrategy } from '../auth/outgoing/index.js'
import {
  configWarnings,
  diffConfig,
  mergeLive,
  sameValue,
  strategyOf,
  type VmcpConfig,
} from '../config/index.js'
import { createLogger, type Logger } from '../log/index.js'
import { createMetrics } from '../metrics/index.js'
import {
  createGateway,
  createModernEndpoint,
  type Gateway,
  type ModernEndpoint,
} from '../mcp/index.js'
import { createOutboundFetch, outboundDispatcher, type FetchLike } from '../net/index.js'
import { createRegistryPoller, type RegistryPoller } from '../registry/index.js'
import { readVersion } from '../version.js'
import { createApp, MCP_PATH } from './app.js'
import { createMcpGuard } from './mcp-guard.js'
import { createMcpPostListener } from './mcp-post.js'
import { requestStateSealing } from './request-state-sealing.js'

export interface VmcpOptions {
  config: VmcpConfig
  logger?: Logger
  /** Outbound fetch for backends and OAuth endpoints (default: the guarded undici fetch). */
  fetch?: FetchLike
  /** Embedded authorization server knobs (tests: registration clock and backoff). */
  authServer?: Pick<AuthServerOptions, 'dcr'>
  /**
   * Relay tools/call, resources/read, prompts/get and completion/complete to Streamable HTTP
   * backends without the MCP SDK (default true). Needs the default outbound fetch.
   */
  relay?: boolean
}

/** A running (or startable) vmcp: the HTTP app, the gateway behind it, and its lifecycle. */
export interface Vmcp {
  /**
   * Listens, then discovers backends; resolves once discovery has settled. `url` is the public
   * MCP URL (from publicUrl when set), `listenUrl` the address actually bound.
   */
  start(): Promise<{ url: string; listenUrl: string }>
  /** Graceful: stop accepting, close sessions and backends, then force-close what remains. */
  close(): Promise<void>
  readonly gateway: Gateway
  /**
   * Backends from `registries`: their state (also in /status) and an on-demand re-list. A reload
   * that changes `registries` replaces it.
   */
  readonly registries: RegistryPoller
  /**
   * Applies a new configuration without a restart (SIGHUP, `serve --watch`): backends added,
   * removed or changed (stopped, then started), aggregation rules and outgoing auth re-read.
   * Unchanged backends and every client session carry on; sessions get list_changed for each list
   * that moved. Settings that need a restart are logged and keep their running value. Reloads run
   * one at a time, in order. `next` must be validated (loadConfigFile).
   */
  reload(next: VmcpConfig): Promise<ReloadResult>
  /** The Hono app; available after `start()` (its routes depend on the listen address). */
  readonly app: Hono | undefined
  readonly url: string | undefined
}

/** What a reload did, by backend name and YAML path. */
export interface ReloadResult {
  added: string[]
  removed: string[]
  changed: string[]
  aggregation: boolean
  /** The registries changed: their backends are listed again by a new poller. */
  registries: boolean
  /** Changed paths that need a restart (`server.port`, `authServer`, …); not applied. */
  restartRequired: string[]
  /** Backends of the new file that could not start (name taken by a registry backend). */
  refused: Array<{ name: string; reason: string }>
}

export function createVmcp(options: VmcpOptions): Vmcp {
  const { config } = options
  // The running configuration: reload replaces its live parts (backends, aggregation, outgoingAuth).
  let current = config
  const logger = options.logger ?? createLogger({ level: config.operational.logLevel })
  const fetch = options.fetch ?? createOutboundFetch()
  const version = readVersion()
  for (const w of configWarnings(config)) logger.warn({ path: w.path }, w.message)
  const strategies = new Map<string, OutgoingAuthStrategy>()
  // Registry backends appear at run time: their strategy is made when first asked for.
  const strategyFor = (name: string): OutgoingAuthStrategy => {
    let s = strategies.get(name)
    if (!s) {
      s = createOutgoingAuth(strategyOf(current, name), { backend: name, logger, fetch })
      strategies.set(name, s)
    }
    return s
  }
  for (const b of config.backends) strategyFor(b.name)
  const metrics = createMetrics()
  const gateway = createGateway({
    config,
    logger,
    fetch,
    version,
    metrics,
    ...(options.relay !== false ? { dispatcher: outboundDispatcher(fetch) } : {}),
    outgoingAuth: strategyFor,
  })
  let registries = createRegistryPoller({ config, logger, fetch, sink: gateway })
  let registriesStarted = false

  const op = config.operational
  // Sessionless 2026-07-28 callers: their pooled backend connections idle out like sessions do.
  const modern: ModernEndpoint = createModernEndpoint({
    routing: gateway.routing,
    logger,
    serverInfo: { name: config.name, version },
    callTimeout: op.callTimeout,
    discoveryTimeout: op.discoveryTimeout,
    idleTimeout: op.sessionTtl,
    requestState: requestStateSealing(config, logger),
  })

  const applyReload = async (next: VmcpConfig): Promise<ReloadResult> => {
    const diff = diffConfig(current, next)
    // A registry backend holding a name the file now configures gives way to it.
    const displaced = registries.setConfigured(next.backends.map((b) => b.name))
    diff.removed.push(...displaced)
    // Other registries: the old poller stops and its backends go; a new one lists the new set.
    const retired = diff.registries ? registries : undefined
    await retired?.close()
    const owned = retired?.status().flatMap((r) => r.backends) ?? []
    diff.removed.push(...owned)
    // Registry backends are not in the file, but their outgoing auth is.
    const skip = new Set([...current.backends.map((b) => b.name), ...displaced, ...owned])
    for (const r of gateway.routing.runtimes()) {
      if (skip.has(r.name) || sameValue(strategyOf(current, r.name), strategyOf(next, r.name))) continue
      diff.changed.push(r.name)
      diff.removed.push(r.name)
      diff.added.push(r.config)
    }
    for (const w of configWarnings(next)) logger.warn({ path: w.path }, w.message)
    for (const path of diff.restartRequired) {
      logger.warn({ path }, `${path} changed: restart required to apply it; the running value stays`)
    }
    current = mergeLive(current, next)
    // A changed backend gets a strategy made from the new outgoingAuth.
    for (const name of diff.removed) strategies.delete(name)
    const refused = await gateway.reconfigure({
      remove: diff.removed,
      add: diff.added,
      ...(diff.aggregation ? { aggregation: diff.aggregation } : {}),
    })
    for (const r of refused) logger.error({ backend: r.name }, `backend ${r.name} not added: ${r.reason}`)
    if (retired) {
      registries = createRegistryPoller({ config: current, logger, fetch, sink: gateway })
      if (registriesStarted && !closing) void registries.start()
    }
    const removedOnly = diff.removed.filter((n) => !diff.changed.includes(n) && !displaced.includes(n))
    const addedOnly = diff.added.map((b) => b.name).filter((n) => !diff.changed.includes(n))
    const result: ReloadResult = {
      added: addedOnly,
      removed: removedOnly,
      changed: diff.changed,
      aggregation: diff.aggregation !== undefined,
      registries: retired !== undefined,
      restartRequired: diff.restartRequired,
      refused,
    }
    const { added, removed, changed, aggregation, restartRequired } = result
    logger.info({ added, removed, changed, aggregation, registries: result.registries, restartRequired }, 'configuration reloaded')
    return result
  }
  let reloading: Promise<unknown> = Promise.resolve()

  let app: Hono | undefined
  let server: ServerType | undefined
  let url: string | undefined
  let authenticator: IncomingAuthenticator | undefined
  let authServer: AuthServer | undefined
  let closing = false

  return {
    gateway,
    get registries() {
      return registries
    },
    get app() {
      return app
    },
    get url() {
      return url
    },

    async start() {
      const { host, port } = config.server
      // `env` carries the Node socket (@hono/node-server bindings): the peer address that rate
      // limits key on. Dropping it would put every client in one 'unknown' bucket. /mcp also reads
      // POST bodies from, and answers on, the Node request/response it carries.
      let handler: ((req: Request, env: unknown) => Response | Promise<Response>) | undefined
      // Session POSTs to /mcp (tools/call and friends) skip Hono and the web Request: mcp-post.ts.
      let fastPost: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined
      let appListener: RequestListener | undefined
      const listening = await new Promise<AddressInfo>((resolve, reject) => {
        server = serve(
          {
            fetch: (req, env) =>
              handler ? handler(req, env) : new Response('starting', { status: 503 }),
            hostname: host,
            port,
            createServer: ((serverOptions: ServerOptions, listener: RequestListener) => {
              appListener = listener
              const node = createServer(serverOptions, (req, res) => {
                if (!fastPost?.(req, res)) void listener(req, res)
              })
              // A load balancer that keeps idle connections longer than vmcp may send a request
              // on one as vmcp closes it, and answer its client 502: behind one, vmcp's timeout
              // must be the longer (the default is Node's, 5 s).
              node.keepAliveTimeout = config.server.keepAliveTimeout
              return node
            }) as typeof createServer,
          },
          (info) => resolve(info),
        )
        server.once('error', reject)
      })
      const listenHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
      const hostPart = listenHost.includes(':') ? `[${listenHost}]` : listenHost
      const listenBase = `http://${hostPart}:${listening.port}`
      const baseUrl = config.server.publicUrl ?? listenBase
      url = `${baseUrl}${MCP_PATH}`
      const rc = config.authServer?.runConfig
      if (rc) {
        const { trustedProxies, forwardedHeader } = config.server
        const clientIp = createClientIpResolver({ trustedProxies, header: forwardedHeader })
        authServer = await createAuthServer({ config: rc, logger, fetch, clientIp, metrics, ...options.authServer })
      }
      authenticator = createAuthenticator(config, logger, fetch, baseUrl, authServer, () => current.outgoingAuth)
      app = createApp({
        name: config.name,
        version,
        server: config.server,
        gateway,
        modern,
        authenticator,
        logger,
        metrics,
        baseUrl,
        ...(authServer ? { authServer: authServer.app } : {}),
        registries: () => (current.registries.length > 0 ? registries.status() : undefined),
      })
      const built = app
      handler = (req, env) => built.fetch(req, env)
      fastPost = createMcpPostListener({
        path: MCP_PATH,
        guard: createMcpGuard(config.server, baseUrl),
        authenticator,
        gateway,
        logger,
        maxBodyBytes: config.server.maxBodyBytes,
        modern: true,
        fallback: (req, res) => void appListener?.(req, res),
      })
      await gateway.start()
      const listenUrl = `${listenBase}${MCP_PATH}`
      // Stopped during startup (SIGTERM while discovering): never announce ready afterwards.
      if (closing) return { url, listenUrl }
      // Registries never hold up serving: their backends join as listings arrive.
      registriesStarted = true
      void registries.start()
      const status = gateway.status()
      logger.info(
        {
          url,
          listen: `${listenBase}${MCP_PATH}`,
          backends: status.backends.length,
          healthy: status.backends.filter((b) => b.health === 'healthy').length,
          auth: config.incomingAuth.type,
          // The next step: how to point a client at vmcp, and where to see what it serves.
          connect: `claude mcp add --transport http ${/^[\w.-]+$/.test(config.name) ? config.name : 'vmcp'} ${url}`,
          status: `${baseUrl}/status`,
        },
        'ready',
      )
      return { url, listenUrl: `${listenBase}${MCP_PATH}` }
    },

    reload(next) {
      const run = reloading.then(() => applyReload(next))
      reloading = run.catch(() => undefined)
      return run
    },

    async close() {
      closing = true
      const registriesClosed = registries.close()
      const srv = server
      if (srv) {
        const closed = new Promise<void>((resolve) => srv.close(() => resolve()))
        await modern.close()
        await gateway.close()
        const force = setTimeout(() => {
          if ('closeAllConnections' in srv) srv.closeAllConnections()
        }, config.operational.shutdownTimeout)
        force.unref()
        if ('closeIdleConnections' in srv) srv.closeIdleConnections()
        await closed
        clearTimeout(force)
      } else {
        await modern.close()
        await gateway.close()
      }
      await authenticator?.close?.()
      await authServer?.close()
      await registriesClosed
    },
  }
}

function createAuthenticator(
  config: VmcpConfig,
  logger: Logger,
  fetch: FetchLike,
  baseUrl: string,
  authServer: AuthServer | undefined,
  outgoingAuth: () => VmcpConfig['outgoingAuth'],
): IncomingAuthenticator {
  const incoming = config.incomingAuth
  if (incoming.type === 'anonymous') {
    logger.warn(
      'incomingAuth is anonymous: anyone who can reach this port can use every backend; use it for local development only',
    )
    return createAnonymousAuthenticator()
  }
  const resourceMetadataUrl = `${baseUrl}/.well-known/oauth-protected-resource${MCP_PATH}`
  const oidc = createOidcAuthenticator({
    config: incoming.oidc,
    logger,
    fetch,
    resourceMetadataUrl,
    // Mode B: vmcp's own keys answer first; the issuer's published JWKS is the fallback.
    ...(authServer ? { localKeys: authServer.getKey } : {}),
  })
  if (!authServer) return oidc
  // Read per request, recomputed when a reload replaced outgoingAuth.
  let seen: VmcpConfig['outgoingAuth'] | undefined
  let required: string[] = []
  const requiredProviders = () => {
    const outgoing = outgoingAuth()
    if (outgoing !== seen) {
      seen = outgoing
      const strategies = [outgoing.default, ...Object.values(outgoing.backends)]
      required = [
        ...new Set(
          strategies.flatMap((s) =>
            s.type === 'upstream_inject'
              ? [s.upstreamInject.providerName]
              : s.type === 'token_exchange' && s.tokenExchange.subjectProviderName !== undefined
                ? [s.tokenExchange.subjectProviderName]
                : [],
          ),
        ),
      ]
    }
    return required
  }
  return withUpstreamTokens(oidc, {
    source: authServer.upstreamTokens,
    resourceMetadataUrl,
    scopes: incoming.oidc.scopes,
    logger,
    requiredProviders,
  })
}

