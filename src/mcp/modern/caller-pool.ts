import { identityKey, type Identity } from '../../auth/incoming/index.js'
import type { Logger } from '../../log/index.js'
import type { AggregatedView } from '../aggregator.js'
import type { BackendConnection, ConnectionSink } from '../backend-connection.js'
import { errorText, SHARED_CLIENT_CAPABILITIES, type BackendRuntime } from '../backend-runtime.js'
import { discoverCatalog, type Catalog, type ListKind } from '../catalog.js'
import type { GatewayRouting, ResourceWatcher } from '../gateway.js'
import type { RelayBackend } from '../relay/http-relay.js'
import type { RpcNotification } from '../routing/json-rpc.js'
import { notifiedList, relayBackendFor } from '../routing/route.js'
import { modernRelayBackend } from './modern-relay.js'
import { markedTool } from './tool-headers.js'
import { BackendUnavailableError } from '../session.js'

export interface CallerPoolOptions {
  routing: GatewayRouting
  logger: Logger
  /** A (caller, backend) connection unused this long is closed. */
  idleTimeout: number
  discoveryTimeout: number
  /** A per-user catalog of this caller changed: only its listeners hear about it. */
  onUserListChanged?(caller: Caller, kind: ListKind | 'resources-all'): void
  /** A backend updated a resource this caller watches. */
  onResourceUpdated?(caller: Caller, uri: string): void
}

interface PooledConnection {
  generation: number
  conn: Promise<BackendConnection>
  lastUsed: number
}

/** One identity on the sessionless path: its latest credentials, per-user catalogs, connections. */
export class Caller {
  identity: Identity
  lastUsed = Date.now()
  readonly key: string
  readonly userCatalogs = new Map<string, Catalog>()
  readonly connections = new Map<string, PooledConnection>()
  readonly relayBackends = new Map<string, { runtime: BackendRuntime; backend: RelayBackend }>()
  /** Relayed calls in flight: their connections are not idle, whatever their last use. */
  relayedCalls = 0
  /** Bumped when a per-user catalog of this caller changes. */
  catalogsVersion = 0
  /** The caller's view, valid while neither the gateway's nor the caller's catalogs changed. */
  cachedView: { generation: number; catalogsVersion: number; view: AggregatedView } | undefined
  /** Open subscriptions/listen streams: while any is open, nothing of this caller idles out. */
  listeners = 0
  /** Resources watched at backends for this caller's listeners: `backend\nuri` to a count. */
  readonly watched = new Map<string, number>()
  readonly watcher: ResourceWatcher

  constructor(identity: Identity, onResourceUpdated: (caller: Caller, uri: string) => void) {
    this.identity = identity
    this.key = identityKey(identity)
    this.watcher = { resourceUpdated: (uri) => onResourceUpdated(this, uri) }
  }
}

const watchKey = (backend: string, uri: string) => `${backend}\n${uri}`

/**
 * Backend connections for 2026-07-28 callers, who have no session: pooled per (identity,
 * backend), opened on first use and closed after `idleTimeout` without use. A stdio backend is
 * its one shared process, as for sessions. Credentials are read per request from the caller's
 * latest identity, so a refreshed token reaches the backend at once.
 */
export class CallerPool {
  readonly #callers = new Map<string, Caller>()
  readonly #options: CallerPoolOptions
  readonly #timer: NodeJS.Timeout
  readonly #unsubscribe: () => void

  constructor(options: CallerPoolOptions) {
    this.#options = options
    this.#unsubscribe = options.routing.onReconnect((runtime) => this.#backendReconnected(runtime))
    this.#timer = setInterval(
      () => this.sweep(),
      Math.max(1000, Math.min(options.idleTimeout / 4, 30_000)),
    )
    this.#timer.unref()
  }

  get size(): number {
    return this.#callers.size
  }

  /** The caller for this identity, created on first sight; its identity is refreshed. */
  caller(identity: Identity): Caller {
    const key = identityKey(identity)
    let caller = this.#callers.get(key)
    if (!caller) {
      caller = new Caller(identity, (c, uri) => this.#options.onResourceUpdated?.(c, uri))
      this.#callers.set(key, caller)
    }
    caller.identity = identity
    caller.lastUsed = Date.now()
    return caller
  }

  /** The caller's connection to a backend: the shared process for stdio, else its pooled one. */
  async connection(caller: Caller, runtime: BackendRuntime): Promise<BackendConnection> {
    if (runtime.health === 'unhealthy' || runtime.health === 'starting') {
      throw new BackendUnavailableError(runtime.name, runtime.lastError ?? 'not connected yet')
    }
    if (runtime.sharesConnection) {
      if (!runtime.shared || runtime.shared.closed)
        throw new BackendUnavailableError(runtime.name, 'not connected')
      return runtime.shared
    }
    const existing = caller.connections.get(runtime.name)
    if (existing) {
      const conn = await existing.conn.catch(() => undefined)
      // A backend that restarted since this connection opened no longer knows its session.
      if (conn && !conn.closed && existing.generation === runtime.generation) {
        existing.lastUsed = Date.now()
        return conn
      }
      this.drop(caller, runtime.name)
    }
    // Everything is declared: a backend's request becomes input_required for the caller, who
    // answers it on the retry if it can (input-required.ts checks its declared capabilities).
    const opening = runtime.openConnection(
      () => caller.identity,
      SHARED_CLIENT_CAPABILITIES,
      this.#sink(caller),
    )
    caller.connections.set(runtime.name, {
      generation: runtime.generation,
      conn: opening,
      lastUsed: Date.now(),
    })
    try {
      const conn = await opening
      await this.#resubscribe(caller, conn)
      return conn
    } catch (err) {
      caller.connections.delete(runtime.name)
      runtime.reportFailure(err)
      throw new BackendUnavailableError(runtime.name, errorText(err))
    }
  }

  /**
   * The caller's aggregated view, built once per (gateway generation, caller catalogs): a
   * backend or list change anywhere, or in this caller's per-user catalogs, rebuilds it.
   */
  view(caller: Caller): AggregatedView {
    const { routing } = this.#options
    const cached = caller.cachedView
    if (
      cached?.generation === routing.generation &&
      cached.catalogsVersion === caller.catalogsVersion
    )
      return cached.view
    const view = routing.viewFor(caller.userCatalogs)
    caller.cachedView = {
      generation: routing.generation,
      catalogsVersion: caller.catalogsVersion,
      view,
    }
    return view
  }

  /** The caller's way to a Streamable HTTP backend through the raw relay (see routing/route.ts). */
  relayBackend(caller: Caller, runtime: BackendRuntime): RelayBackend {
    const known = caller.relayBackends.get(runtime.name)
    if (known?.runtime === runtime) return known.backend
    const backend = relayBackendFor(runtime, {
      identity: () => caller.identity,
      connection: () => this.connection(caller, runtime),
      current: async () => caller.connections.get(runtime.name)?.conn.catch(() => undefined),
      drop: () => this.drop(caller, runtime.name),
      catalogNotification: (n) => void this.#relayedNotification(caller, runtime, n),
    })
    caller.relayBackends.set(runtime.name, { runtime, backend })
    return backend
  }

  /** The caller's way to a 2026-07-28-only backend through the raw relay (modern-relay.ts). */
  modernRelayBackend(caller: Caller, runtime: BackendRuntime): RelayBackend {
    const key = `${runtime.name}\u00002026-07-28`
    const known = caller.relayBackends.get(key)
    if (known?.runtime === runtime) return known.backend
    const backend = modernRelayBackend(this.relayBackend(caller, runtime), (name) => {
      const catalog = runtime.identityScoped ? caller.userCatalogs.get(runtime.name) : runtime.catalog
      return catalog && markedTool(catalog.tools, name)
    })
    caller.relayBackends.set(key, { runtime, backend })
    return backend
  }

  /**
   * Watches a resource for the caller's listeners: the first watch of a (backend, URI)
   * subscribes at the backend (MCP 2025-11-25 §Resources, Subscriptions) over the caller's own
   * connection, or once for everyone on a shared process; later ones only count.
   */
  async watch(caller: Caller, runtime: BackendRuntime, uri: string): Promise<void> {
    // The connection first: a new one subscribes to what was watched before, not this URI too.
    const conn = runtime.sharesConnection ? undefined : await this.connection(caller, runtime)
    const key = watchKey(runtime.name, uri)
    const count = caller.watched.get(key) ?? 0
    caller.watched.set(key, count + 1)
    if (count > 0) return
    try {
      if (!conn) await this.#options.routing.subscribeShared(caller.watcher, runtime, uri, true)
      else await conn.client.subscribeResource({ uri })
    } catch (err) {
      caller.watched.delete(key)
      throw err
    }
  }

  /** Ends one watch; the last one unsubscribes at the backend. */
  async unwatch(caller: Caller, runtime: BackendRuntime, uri: string): Promise<void> {
    const key = watchKey(runtime.name, uri)
    const count = caller.watched.get(key) ?? 0
    if (count > 1) return void caller.watched.set(key, count - 1)
    caller.watched.delete(key)
    if (count === 0) return
    if (runtime.sharesConnection)
      await this.#options.routing.subscribeShared(caller.watcher, runtime, uri, false)
    else {
      const conn = await caller.connections.get(runtime.name)?.conn.catch(() => undefined)
      if (conn && !conn.closed) await conn.client.unsubscribeResource({ uri })
    }
  }

  /** Closes and forgets the caller's connection to a backend (it expired or broke). */
  drop(caller: Caller, backend: string): void {
    const entry = caller.connections.get(backend)
    if (!entry) return
    caller.connections.delete(backend)
    void entry.conn.then((c) => c.close()).catch(() => undefined)
  }

  /** Discovers identity-scoped backends with this caller's credentials, once per caller. */
  async ensureUserCatalogs(caller: Caller): Promise<void> {
    const pending = this.#options.routing
      .runtimes()
      .filter((r) => r.identityScoped && !caller.userCatalogs.has(r.name))
      .map(async (runtime) => {
        try {
          const conn = await this.connection(caller, runtime)
          const catalog = await discoverCatalog(conn.client, {
            timeout: this.#options.discoveryTimeout,
          })
          caller.userCatalogs.set(runtime.name, catalog)
          caller.catalogsVersion++
        } catch (err) {
          this.#options.logger.warn(
            { backend: runtime.name, err: errorText(err) },
            'per-user discovery failed',
          )
        }
      })
    await Promise.all(pending)
  }

  /** Closes connections idle past the limit (never one with a call in flight), then idle callers. */
  sweep(now = Date.now()): void {
    const limit = this.#options.idleTimeout
    for (const [key, caller] of this.#callers) {
      if (caller.relayedCalls > 0 || caller.listeners > 0) continue
      for (const [backend, entry] of caller.connections) {
        if (now - entry.lastUsed <= limit) continue
        void entry.conn.then(
          (conn) => {
            if (conn.inflight.size > 0 || caller.connections.get(backend) !== entry) return
            caller.connections.delete(backend)
            this.#options.logger.debug({ backend }, 'idle caller connection closed')
            return conn.close()
          },
          () => caller.connections.delete(backend),
        )
      }
      if (caller.connections.size === 0 && now - caller.lastUsed > limit) this.#callers.delete(key)
    }
  }

  async close(): Promise<void> {
    this.#unsubscribe()
    clearInterval(this.#timer)
    const all = [...this.#callers.values()].flatMap((c) => [...c.connections.values()])
    this.#callers.clear()
    await Promise.allSettled(all.map(async (e) => (await e.conn).close()))
  }

  /**
   * A backend restarted and forgot what it was watching: each caller watching a resource there
   * gets a fresh connection, which subscribes again ({@link #resubscribe}).
   */
  #backendReconnected(runtime: BackendRuntime): void {
    if (runtime.sharesConnection) return
    const prefix = watchKey(runtime.name, '')
    for (const caller of this.#callers.values()) {
      if (![...caller.watched.keys()].some((k) => k.startsWith(prefix))) continue
      this.connection(caller, runtime).catch((err: unknown) => {
        this.#options.logger.debug({ backend: runtime.name, err: errorText(err) }, 'resubscribe failed')
      })
    }
  }

  /** Subscribes a new connection to the caller's watched resources at its backend. */
  async #resubscribe(caller: Caller, conn: BackendConnection): Promise<void> {
    const prefix = watchKey(conn.backend, '')
    const uris = [...caller.watched.keys()]
      .filter((k) => k.startsWith(prefix))
      .map((k) => k.slice(prefix.length))
    await Promise.all(
      uris.map((uri) =>
        conn.client
          .subscribeResource({ uri }, { timeout: this.#options.discoveryTimeout })
          .catch((err: unknown) => {
            this.#options.logger.warn(
              { backend: conn.backend, err: errorText(err) },
              'resubscribe failed',
            )
          }),
      ),
    )
  }

  #sink(caller: Caller): ConnectionSink {
    return {
      listChanged: (kind: ListKind | 'resources-all', conn) =>
        void this.#listChanged(caller, kind, conn),
      resourceUpdated: (uri, conn) => this.#resourceUpdated(caller, conn.backend, uri),
      closed: (conn) => {
        const entry = caller.connections.get(conn.backend)
        void entry?.conn.then((c) => {
          if (c === conn && caller.connections.get(conn.backend) === entry)
            caller.connections.delete(conn.backend)
        })
      },
    }
  }

  /** A backend's list changed: a per-user catalog for this caller only, a shared one for everyone. */
  async #listChanged(caller: Caller, kind: ListKind | 'resources-all', conn: BackendConnection) {
    const { routing, logger } = this.#options
    const runtime = routing.runtime(conn.backend)
    const own = caller.userCatalogs.get(conn.backend)
    try {
      await runtime?.refresh(kind, conn, own)
      if (!own) return
      caller.catalogsVersion++
      this.#options.onUserListChanged?.(caller, kind)
    } catch (err) {
      logger.warn(
        { backend: conn.backend, err: errorText(err) },
        'refresh after list_changed failed',
      )
    }
  }

  /** What the connection sink does with the same notifications, sent on a relayed call's stream. */
  async #relayedNotification(caller: Caller, runtime: BackendRuntime, n: RpcNotification) {
    if (n.method === 'notifications/resources/updated') {
      const uri = n.params?.uri
      if (typeof uri === 'string') this.#resourceUpdated(caller, runtime.name, uri)
      return
    }
    const conn = await this.connection(caller, runtime).catch(() => undefined)
    if (conn) await this.#listChanged(caller, notifiedList(n.method), conn)
  }

  #resourceUpdated(caller: Caller, backend: string, uri: string): void {
    if (caller.watched.has(watchKey(backend, uri))) this.#options.onResourceUpdated?.(caller, uri)
  }
}
