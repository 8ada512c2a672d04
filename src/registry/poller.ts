import type { BackendConfig, HttpBackendConfig, RegistryConfig, VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { FetchLike } from '../net/index.js'
import { buildRegistryBackends, listRegistryServers, RegistryListError, type RegistryFailure } from './listing.js'
import { createRegistryOAuth } from './oauth.js'
import { createRegistryTokenStoreFromConfig } from './from-config.js'
import { createRegistryTokenSource, type RegistryTokenSource } from './token-source.js'
import type { RegistryTokenStore } from './token-store.js'

/** Where registry backends go: the gateway's run-time add/remove. */
export interface RegistryBackendSink {
  addBackend(backend: BackendConfig): Promise<void>
  removeBackend(name: string): Promise<boolean>
}

/** One registry as /status shows it. */
export interface RegistryStatus {
  name: string
  url: string
  state: 'pending' | 'ok' | RegistryFailure
  message?: string
  /** ISO time of the last good listing. */
  lastListing?: string
  servers: number
  backends: string[]
}

export interface RegistryPoller {
  /** First listing of every registry, then one timer each (refreshInterval). Never throws. */
  start(): Promise<void>
  status(): RegistryStatus[]
  /** Lists every registry now (what the timers do), resolving when applied. */
  syncNow(): Promise<void>
  /**
   * The configured backend names changed (hot reload): a registry backend whose name is now
   * configured is given up (configured backends win, as at startup) and returned, for the caller to
   * remove before it adds the configured one; a name no longer configured is free at the next listing.
   */
  setConfigured(names: Iterable<string>): string[]
  /** Stops the timers, waits for a listing in flight, closes the store (Redis). */
  close(): Promise<void>
}

export interface RegistryPollerOptions {
  config: VmcpConfig
  logger: Logger
  fetch: FetchLike
  sink: RegistryBackendSink
}

/**
 * Keeps each registry's servers in the gateway: listed at start and every refreshInterval, added
 * and removed backends applied (sessions get list_changed). Non-interactive: without a usable
 * sign-in it logs how to sign in and serves everything else; an unreachable registry keeps its
 * last good listing.
 */
export function createRegistryPoller(options: RegistryPollerOptions): RegistryPoller {
  const { config, logger, fetch, sink } = options
  const log = logger.child({ component: 'registry' })
  let configured = new Set(config.backends.map((b) => b.name))
  const timers: NodeJS.Timeout[] = []
  let closed = false
  // Sign-ins, and the summary of each listing for `vmcp registry status`.
  let store: RegistryTokenStore | undefined
  const entries = config.registries.map((registry) => ({
    registry,
    status: { name: registry.name, url: registry.url, state: 'pending', servers: 0, backends: [] } as RegistryStatus,
    current: new Map<string, HttpBackendConfig>(),
    tokens: undefined as RegistryTokenSource | undefined,
    reported: new Set<string>(),
    running: undefined as Promise<void> | undefined,
  }))
  type Entry = (typeof entries)[number]
  const ownedByOthers = (me: Entry) => new Set(entries.filter((e) => e !== me).flatMap((e) => [...e.current.keys()]))

  async function sync(e: Entry): Promise<void> {
    const { registry } = e
    let servers
    try {
      servers = await listRegistryServers({ registry, fetch, ...(e.tokens ? { tokens: e.tokens } : {}) })
    } catch (err) {
      const kind: RegistryFailure = err instanceof RegistryListError ? err.kind : 'unreachable'
      const message = err instanceof Error ? err.message : String(err)
      const keeping = kind === 'unreachable' && e.current.size > 0 ? `; keeping the last good listing (${e.current.size} backend(s))` : ''
      if (e.status.state !== kind || e.status.message !== message) log.warn({ registry: registry.name, state: kind }, `${message}${keeping}`)
      e.status = { ...e.status, state: kind, message: `${message}${keeping}` }
      return
    }
    const taken = new Set([...configured, ...ownedByOthers(e)])
    const { backends, skipped } = buildRegistryBackends(registry, servers, taken)
    for (const s of skipped) {
      const key = `${s.server}\0${s.reason}`
      if (!e.reported.has(key)) log.warn({ registry: registry.name, server: s.server }, `registry "${registry.name}": server ${s.server} skipped: ${s.reason}`)
      e.reported.add(key)
    }
    const next = new Map(backends.map((b) => [b.name, b]))
    const same = (a: HttpBackendConfig, b: HttpBackendConfig) => a.url === b.url && a.transport === b.transport
    for (const [name, old] of e.current) {
      const now = next.get(name)
      if (now && same(old, now)) continue
      e.current.delete(name)
      await sink.removeBackend(name)
      log.info({ registry: registry.name, backend: name }, 'registry backend removed')
    }
    for (const [name, b] of next) {
      if (e.current.has(name) || closed) continue
      try {
        await sink.addBackend(b)
        e.current.set(name, b)
        log.info({ registry: registry.name, backend: name, url: b.url }, 'registry backend added')
      } catch (err) {
        log.warn({ registry: registry.name, backend: name }, `registry backend ${name} not added: ${(err as Error).message}`)
      }
    }
    if (e.status.state !== 'ok') log.info({ registry: registry.name, servers: servers.length, backends: e.current.size }, 'registry listed')
    const at = new Date().toISOString()
    e.status = { name: registry.name, url: registry.url, state: 'ok', lastListing: at, servers: servers.length, backends: [...e.current.keys()] }
    await store?.putListing(registry.url, { at, servers: servers.length, backends: [...e.current.keys()] }).catch((err: unknown) => {
      log.warn({ registry: registry.name, err: (err as Error).message }, 'cannot record the listing for vmcp registry status')
    })
  }

  // One sync at a time per registry; a tick that finds one running skips.
  const run = (e: Entry) => {
    if (closed || e.running) return e.running ?? Promise.resolve()
    e.running = sync(e)
      .catch((err: unknown) => log.error({ registry: e.registry.name, err: (err as Error).message }, 'registry sync failed'))
      .finally(() => {
        e.running = undefined
      })
    return e.running
  }

  return {
    async start() {
      if (entries.length === 0) return
      const opened = await createRegistryTokenStoreFromConfig(config, logger)
      // Closed while the store was opening (shutdown during startup).
      if (closed) return void (await opened.close())
      store = opened
      for (const e of entries) {
        const r = e.registry
        if (!r.auth) continue
        e.tokens = createRegistryTokenSource({
          registry: r as RegistryConfig & { auth: NonNullable<RegistryConfig['auth']> },
          oauth: createRegistryOAuth({ auth: r.auth, fetch }),
          store: opened,
          logger,
        })
      }
      await Promise.all(entries.map(run))
      for (const e of entries) {
        if (closed) break
        const t = setInterval(() => void run(e), e.registry.refreshInterval)
        t.unref()
        timers.push(t)
      }
    },
    syncNow: async () => {
      await Promise.all(entries.map((e) => e.running ?? Promise.resolve()))
      await Promise.all(entries.map(run))
    },
    status: () => entries.map((e) => ({ ...e.status, backends: [...e.status.backends] })),
    setConfigured(names) {
      configured = new Set(names)
      const displaced: string[] = []
      for (const e of entries) {
        for (const name of [...e.current.keys()].filter((n) => configured.has(n))) {
          e.current.delete(name)
          displaced.push(name)
          log.warn({ registry: e.registry.name, backend: name }, `registry backend ${name} gives way to the configured backend of that name`)
        }
        e.status = { ...e.status, backends: [...e.current.keys()] }
      }
      return displaced
    },
    async close() {
      closed = true
      for (const t of timers) clearInterval(t)
      // A listing in flight may still record its summary.
      await Promise.all(entries.map((e) => e.running))
      await store?.close()
    },
  }
}
