import { randomUUID } from 'node:crypto'
import { isInitializeRequest, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import { identityKey, type Identity } from '../auth/incoming/index.js'
import type { Dispatcher } from 'undici'
import type { OutgoingAuthStrategy } from '../auth/outgoing/index.js'
import type { AggregationConfig, BackendConfig, VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { Metrics } from '../metrics/index.js'
import type { FetchLike } from '../net/index.js'
import { buildView, type AggregatedView, type BackendCatalog } from './aggregator.js'
import type { BackendConnection } from './backend-connection.js'
import { BackendRuntime, errorText, type BackendHealth } from './backend-runtime.js'
import type { Catalog, ListKind } from './catalog.js'
import { alignSessionProtocolVersion, MODERN_PROTOCOL_VERSIONS, negotiatedLegacyVersion } from './modern/era.js'
import type { ReplyChannel } from './routing/call-table.js'
import { INVALID_REQUEST, isJsonContentType, isNotification, isRequest, isResponse } from './routing/json-rpc.js'
import { ClientSession, type SessionHost } from './session.js'

export interface GatewayOptions {
  config: VmcpConfig
  logger: Logger
  fetch: FetchLike
  version: string
  /**
   * The outbound dispatcher behind `fetch`: request/response methods to Streamable HTTP backends
   * are relayed over it without the SDK. Without it every call takes the SDK path.
   */
  dispatcher?: Dispatcher
  /** Outgoing strategy per backend name (already resolved from outgoingAuth). */
  outgoingAuth: (backend: string) => OutgoingAuthStrategy
  /** Request metrics; the gateway also feeds their session and backend gauges. */
  metrics?: Metrics
}

export interface BackendStatus {
  name: string
  transport: string
  health: BackendHealth
  tools: number
  resources: number
  prompts: number
  /** Process restarts since vmcp started (stdio and launched backends). */
  restarts: number
  error?: string
}

/** One exposed tool: the name clients call, and where it really lives. */
export interface ExposedTool {
  name: string
  backend: string
  /** The tool's name at its backend. */
  tool: string
}

export interface GatewayStatus {
  ready: boolean
  sessions: number
  backends: BackendStatus[]
}

/** Writes a POST's answer straight to the client connection (no web Response in between). */
export interface DirectReply {
  /** The reply channel for one request, with these headers on its response. */
  channel(headers: Record<string, string>): ReplyChannel
  /** 202 Accepted, for notifications and responses. */
  accepted(headers: Record<string, string>): void
}

/**
 * The aggregating MCP endpoint: backends, their catalogs and health, and client sessions.
 * `handle()` takes an authenticated Streamable HTTP request and returns the response, or
 * `undefined` when it answered through `direct` (single messages of an existing session).
 */
export interface Gateway {
  start(): Promise<void>
  /**
   * Serves a 2025-era request (session path); `undefined` when it answered through `direct`
   * (single messages of an existing session).
   */
  handle(request: Request, identity: Identity, body: unknown, direct?: DirectReply): Promise<Response | undefined>
  /**
   * One POSTed message of an existing session, judged on its headers alone (no web Request):
   * answered through `direct` (`undefined`), or an error Response. `false` when only `handle`
   * serves it: a batch, initialize, or a 2026-07-28 `MCP-Protocol-Version` on a 2025 session.
   */
  postMessage(
    headers: Pick<Headers, 'get'>,
    identity: Identity,
    body: unknown,
    direct: DirectReply,
  ): Response | undefined | false | Promise<Response | undefined | false>
  /** Backends and views for the sessionless 2026-07-28 path (src/mcp/modern). */
  readonly routing: GatewayRouting
  status(): GatewayStatus
  /**
   * The tools every client sees, in list order, with their backends. Backends whose catalog is
   * per user (identity-scoped auth) are not in it: their tools depend on who asks.
   */
  exposedTools(): ExposedTool[]
  readonly ready: boolean
  /**
   * Adds a backend at run time (registry listings): discovered at once when the gateway has
   * started, then sessions get list_changed. Throws when the name is taken.
   */
  addBackend(backend: BackendConfig): Promise<void>
  /** Removes a backend added at run time (or configured): stopped, then list_changed. */
  removeBackend(name: string): Promise<boolean>
  /**
   * Applies a configuration change in one step (hot reload): the named backends are stopped and
   * forgotten by every session, the new ones started, the aggregation rules replaced; then each
   * list that moved is announced once (list_changed). Other backends and every session carry on.
   * Returns the backends that could not be added (name taken, e.g. by a registry backend).
   */
  reconfigure(change: GatewayChange): Promise<Array<{ name: string; reason: string }>>
  close(): Promise<void>
}

/** One hot-reload step for the gateway; a changed backend is in both `remove` and `add`. */
export interface GatewayChange {
  remove?: readonly string[]
  add?: readonly BackendConfig[]
  aggregation?: AggregationConfig
}

/** Someone told about `notifications/resources/updated` for the URIs it watches. */
export interface ResourceWatcher {
  resourceUpdated(uri: string): unknown
}

/** What the 2026-07-28 path reads from the gateway: the same backends, catalogs and views. */
export interface GatewayRouting {
  /** Resolves once startup discovery has settled. */
  whenStarted(): Promise<void>
  runtime(name: string): BackendRuntime | undefined
  runtimes(): readonly BackendRuntime[]
  /** The view over shared catalogs plus the given per-user catalogs. */
  viewFor(userCatalogs?: ReadonlyMap<string, Catalog>): AggregatedView
  /** Bumped whenever a backend's catalog or health changes: views built before are stale. */
  readonly generation: number
  /** The outbound dispatcher the raw relay uses; without it every call takes the SDK path. */
  readonly dispatcher: Dispatcher | undefined
  /** Request metrics, shared with the 2025 sessions. */
  readonly metrics: Metrics | undefined
  /**
   * Watches a resource of a shared (stdio) backend: the process subscribes once per URI for
   * every session and caller watching it, and `watcher` hears its updates.
   */
  subscribeShared(watcher: ResourceWatcher, runtime: BackendRuntime, uri: string, on: boolean): Promise<void>
  /** Called with each list that changed in the shared view; returns the unsubscribe. */
  onListChanged(listener: (kind: ListKind | 'resources-all') => void): () => void
  /**
   * Called when a backend is reachable again after it was lost (it restarted): subscriptions
   * made there are gone. Shared (stdio) backends are resubscribed by the gateway itself.
   */
  onReconnect(listener: (runtime: BackendRuntime) => void): () => void
}

const jsonRpcError = (status: number, code: number, message: string) =>
  new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json' },
  })
const sessionNotFound = () => jsonRpcError(404, -32001, 'Session not found')

export function createGateway(options: GatewayOptions): Gateway {
  const { config, logger } = options
  const op = config.operational
  const sessions = new Map<string, ClientSession>()
  const runtimes: BackendRuntime[] = []
  const byName = new Map<string, BackendRuntime>()
  // stdio processes are shared: one backend subscription per URI, fanned out to sessions.
  const sharedSubs = new Map<string, Map<string, Set<ResourceWatcher>>>()
  // Replaced by reconfigure (hot reload); everything else of `config` is fixed for the run.
  let aggregation = config.aggregation
  let sharedView: AggregatedView | undefined
  let lastSignature: Record<string, string> = {}
  let generation = 0
  let ready = false
  let starting: Promise<void> | undefined
  let closed = false
  let healthTimer: NodeJS.Timeout | undefined
  let sweepTimer: NodeJS.Timeout | undefined

  const clientInfo = { name: `vmcp:${config.name}`, version: options.version }
  options.metrics?.setSource({
    sessions: () => sessions.size,
    backends: () => runtimes.map((r) => ({ name: r.name, health: r.health, restarts: r.restarts })),
  })
  const anyIdentityScoped = () => runtimes.some((r) => r.identityScoped)

  /** The session with this id, if this identity owns it; marked as seen. */
  const existingSession = (sessionId: string, identity: Identity): ClientSession | undefined => {
    const session = sessions.get(sessionId)
    // Another identity presenting this id learns nothing: same answer as an unknown id. (A
    // verified token keeps its identity object, so the one seen last is usually this one.)
    if (!session || (session.identity !== identity && session.ownerKey !== identityKey(identity))) return undefined
    session.identity = identity
    session.lastSeen = Date.now()
    return session
  }

  const listChangedListeners = new Set<(kind: ListKind | 'resources-all') => void>()
  const reconnectListeners = new Set<(runtime: BackendRuntime) => void>()

  const catalogsFor = (userCatalogs?: ReadonlyMap<string, Catalog>): BackendCatalog[] => {
    const out: BackendCatalog[] = []
    for (const r of runtimes) {
      const catalog = r.identityScoped ? userCatalogs?.get(r.name) : r.catalog
      if (catalog) out.push({ backend: r.name, catalog })
    }
    return out
  }

  // The view is rebuilt whenever a backend changes: a conflict is logged when it appears, not
  // again on every rebuild while it lasts.
  let reported = new Set<string>()
  const computeShared = (): AggregatedView => {
    const { view, diagnostics } = buildView(catalogsFor(), aggregation)
    const current = new Set<string>()
    for (const d of diagnostics) {
      const key = `${d.level} ${d.backend} ${d.message}`
      current.add(key)
      if (!reported.has(key)) logger[d.level]({ backend: d.backend }, d.message)
    }
    reported = current
    return view
  }

  const signature = (view: AggregatedView): Record<string, string> => ({
    tools: JSON.stringify(view.tools),
    prompts: JSON.stringify(view.prompts),
    'resources-all': JSON.stringify([view.resources, view.resourceTemplates]),
  })

  // A backend's catalog or health changed: rebuild the shared view, tell sessions what moved.
  const onRuntimeChange = () => {
    if (closed) return
    generation++
    sharedView = computeShared()
    const next = signature(sharedView)
    const changed = (Object.keys(next) as Array<ListKind | 'resources-all'>).filter(
      (k) => next[k] !== lastSignature[k],
    )
    lastSignature = next
    for (const session of sessions.values()) {
      session.invalidateView()
      for (const kind of changed) void session.notifyListChanged(kind)
    }
    for (const kind of changed) for (const listener of listChangedListeners) listener(kind)
  }

  const viewFor = (userCatalogs?: ReadonlyMap<string, Catalog>): AggregatedView => {
    if (!anyIdentityScoped()) return (sharedView ??= computeShared())
    return buildView(catalogsFor(userCatalogs), aggregation).view
  }

  // A shared process subscribes once per URI at the backend, however many clients watch it.
  const subscribeShared = async (
    watcher: ResourceWatcher,
    runtime: BackendRuntime,
    uri: string,
    on: boolean,
  ): Promise<void> => {
    const byUri = sharedSubs.get(runtime.name) ?? new Map<string, Set<ResourceWatcher>>()
    sharedSubs.set(runtime.name, byUri)
    const set = byUri.get(uri) ?? new Set<ResourceWatcher>()
    const before = set.size
    if (on) set.add(watcher)
    else set.delete(watcher)
    if (set.size > 0) byUri.set(uri, set)
    else byUri.delete(uri)
    const conn = runtime.shared
    if (!conn) return
    if (before === 0 && set.size === 1) await conn.client.subscribeResource({ uri })
    if (before > 0 && set.size === 0) await conn.client.unsubscribeResource({ uri })
  }

  // A restarted backend forgot every subscription: each URI watched there is subscribed again,
  // once for a shared process, per connection for sessions and sessionless callers.
  const onReconnect = (runtime: BackendRuntime) => {
    if (closed) return
    const conn = runtime.shared
    for (const uri of sharedSubs.get(runtime.name)?.keys() ?? []) {
      conn?.client.subscribeResource({ uri }, { timeout: op.discoveryTimeout }).catch((err: unknown) => {
        logger.warn({ backend: runtime.name, err: errorText(err) }, 'resubscribe failed')
      })
    }
    for (const session of sessions.values()) void session.backendReconnected(runtime)
    for (const listener of reconnectListeners) listener(runtime)
  }

  const host: SessionHost = {
    logger,
    serverInfo: { name: config.name, version: options.version },
    callTimeout: op.callTimeout,
    discoveryTimeout: op.discoveryTimeout,
    dispatcher: options.dispatcher,
    metrics: options.metrics,
    runtime: (name) => byName.get(name),
    runtimes: () => runtimes,
    viewFor: (session) => viewFor(session.userCatalogs),
    sessionClosed: (session) => {
      if (sessions.get(session.id) === session) sessions.delete(session.id)
      for (const byUri of sharedSubs.values()) {
        for (const [uri, set] of byUri) {
          set.delete(session)
          if (set.size === 0) byUri.delete(uri)
        }
      }
      logger.debug({ session: session.logId }, 'session closed')
    },
    subscribeShared: (session, runtime, uri, on) => subscribeShared(session, runtime, uri, on),
  }

  const addRuntime = (backend: BackendConfig): BackendRuntime => {
    const runtime: BackendRuntime = new BackendRuntime({
      config: backend,
      auth: options.outgoingAuth(backend.name),
      fetch: options.fetch,
      logger,
      operational: op,
      clientInfo,
      onChange: onRuntimeChange,
      onReconnect,
      sink: {
        // The shared connection's own traffic: nothing claims it, so it has nowhere to go.
        listChanged: (kind: ListKind | 'resources-all', conn: BackendConnection) => {
          runtime.refresh(kind, conn).catch((err: unknown) => {
            logger.warn({ backend: backend.name, err: errorText(err) }, 'refresh after list_changed failed')
          })
        },
        resourceUpdated: (uri: string) => {
          for (const s of sharedSubs.get(backend.name)?.get(uri) ?? []) void s.resourceUpdated(uri)
        },
      },
    })
    runtimes.push(runtime)
    byName.set(backend.name, runtime)
    return runtime
  }
  for (const backend of config.backends) addRuntime(backend)

  // Stops a backend and removes every trace of it, so a successor under its name starts clean.
  const detach = async (name: string): Promise<boolean> => {
    const runtime = byName.get(name)
    if (!runtime) return false
    byName.delete(name)
    runtimes.splice(runtimes.indexOf(runtime), 1)
    sharedSubs.delete(name)
    for (const session of sessions.values()) session.forgetBackend(name)
    await runtime.stop()
    return true
  }

  const sweep = () => {
    const now = Date.now()
    for (const session of sessions.values()) {
      if (!session.busy && now - session.lastSeen > op.sessionTtl) {
        logger.info({ session: session.logId }, 'session expired')
        void session.transport.close()
      }
    }
  }

  const postMessage: Gateway['postMessage'] = (headers, identity, body, direct) => {
    const version = headers.get('mcp-protocol-version')
    if (Array.isArray(body) || (body as { method?: unknown } | null)?.method === 'initialize') return false
    if (version !== null && MODERN_PROTOCOL_VERSIONS.includes(version)) return false
    // Synchronous once started: a call is posted to its backend in the tick its body was read.
    if (!ready && starting) return starting.then(() => postMessage(headers, identity, body, direct))
    const session = existingSession(headers.get('mcp-session-id') ?? '', identity)
    if (!session) return sessionNotFound()
    return postDirect(session, headers, body, direct)
  }

  return {
    get ready() {
      return ready
    },

    routing: {
      metrics: options.metrics,
      whenStarted: async () => {
        if (!ready && starting) await starting
      },
      runtime: (name) => byName.get(name),
      runtimes: () => runtimes,
      viewFor,
      get generation() {
        return generation
      },
      dispatcher: options.dispatcher,
      subscribeShared,
      onListChanged: (listener) => {
        listChangedListeners.add(listener)
        return () => listChangedListeners.delete(listener)
      },
      onReconnect: (listener) => {
        reconnectListeners.add(listener)
        return () => reconnectListeners.delete(listener)
      },
    },

    async start() {
      starting = Promise.all(runtimes.map((r) => r.start())).then(() => undefined)
      await starting
      // Closed while discovering (SIGTERM during startup): start nothing more.
      if (closed) return
      sharedView = computeShared()
      lastSignature = signature(sharedView)
      ready = true
      healthTimer = setInterval(() => {
        for (const r of runtimes) void r.check()
      }, op.healthCheckInterval)
      healthTimer.unref()
      sweepTimer = setInterval(sweep, Math.max(1000, Math.min(op.sessionTtl / 4, 30_000)))
      sweepTimer.unref()
    },

    async handle(request, identity, body, direct) {
      // Clients that connect during startup discovery wait for it (bounded by discoveryTimeout).
      if (!ready && starting) await starting
      const sessionId = request.headers.get('mcp-session-id')
      const owner = identityKey(identity)
      if (!sessionId) {
        const isInit = Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body)
        if (request.method !== 'POST' || !isInit) {
          return jsonRpcError(400, -32000, 'Bad Request: Mcp-Session-Id header is required')
        }
        if (sessions.size >= op.maxSessions) {
          return jsonRpcError(503, -32000, 'Too many sessions; try again later')
        }
        const started = performance.now()
        const session = new ClientSession(host, identity, owner, () => randomUUID())
        session.protocolVersion = negotiatedLegacyVersion(body)
        await session.start()
        const response = await session.transport.handleRequest(request, { parsedBody: body })
        const opened = session.transport.sessionId !== undefined
        if (opened) {
          sessions.set(session.transport.sessionId as string, session)
          logger.debug({ session: session.logId, subject: identity.subject }, 'session created')
        } else {
          await session.close()
        }
        options.metrics?.call('initialize', '').done(opened ? 'ok' : 'error', (performance.now() - started) / 1000)
        return response
      }
      const session = existingSession(sessionId, identity)
      if (!session) return sessionNotFound()
      request = alignSessionProtocolVersion(request, session, logger)
      if (direct && request.method === 'POST' && !Array.isArray(body) && !isInitializeRequest(body)) {
        return postDirect(session, request.headers, body, direct)
      }
      const response = await session.transport.handleRequest(request, { parsedBody: body })
      session.lastSeen = Date.now()
      if (request.method === 'GET' && response.body) return trackStream(session, response)
      return response
    },

    exposedTools() {
      const view = viewFor()
      return view.tools.map((t) => {
        const route = view.toolRoutes.get(t.name)
        return { name: t.name, backend: route?.backend ?? '', tool: route?.name ?? t.name }
      })
    },

    postMessage,

    status() {
      return {
        ready,
        sessions: sessions.size,
        backends: runtimes.map((r) => {
          const status: BackendStatus = {
            name: r.name,
            transport: r.config.transport,
            health: r.health,
            tools: r.catalog?.tools.length ?? 0,
            resources: r.catalog?.resources.length ?? 0,
            prompts: r.catalog?.prompts.length ?? 0,
            restarts: r.restarts,
          }
          if (r.lastError) status.error = r.lastError
          return status
        }),
      }
    },

    async addBackend(backend) {
      if (closed) return
      if (byName.has(backend.name)) throw new Error(`backend name "${backend.name}" is taken`)
      const runtime = addRuntime(backend)
      if (ready || starting) await runtime.start()
      onRuntimeChange()
    },

    async removeBackend(name) {
      const removed = await detach(name)
      if (removed) onRuntimeChange()
      return removed
    },

    async reconfigure(change) {
      if (closed) return []
      await Promise.all((change.remove ?? []).map(detach))
      if (change.aggregation) aggregation = change.aggregation
      const refused: Array<{ name: string; reason: string }> = []
      const added: BackendRuntime[] = []
      for (const backend of change.add ?? []) {
        if (byName.has(backend.name)) refused.push({ name: backend.name, reason: 'the name is taken by a registry backend' })
        else added.push(addRuntime(backend))
      }
      if (ready || starting) await Promise.all(added.map((r) => r.start()))
      onRuntimeChange()
      return refused
    },

    async close() {
      closed = true
      clearInterval(healthTimer)
      clearInterval(sweepTimer)
      await Promise.allSettled([...sessions.values()].map((s) => s.close()))
      await Promise.allSettled(runtimes.map((r) => r.stop()))
    },
  }
}

/**
 * One message of an existing session, answered on its own reply channel. The checks mirror the
 * SDK transport's, with the same answers (Streamable HTTP §Sending Messages to the Server).
 */
function postDirect(
  session: ClientSession,
  headers: Pick<Headers, 'get'>,
  body: unknown,
  direct: DirectReply,
): Response | undefined {
  const accept = headers.get('accept')
  if (!accept?.includes('application/json') || !accept.includes('text/event-stream')) {
    return jsonRpcError(406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream')
  }
  if (!isJsonContentType(headers.get('content-type'))) {
    return jsonRpcError(415, -32000, 'Unsupported Media Type: Content-Type must be application/json')
  }
  const version = headers.get('mcp-protocol-version')
  if (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    return jsonRpcError(
      400,
      -32000,
      `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
    )
  }
  if ((body as { jsonrpc?: unknown } | null)?.jsonrpc !== '2.0') return invalidMessage()
  const replyHeaders = { 'mcp-session-id': session.id }
  if (isRequest(body)) {
    session.dispatch(body, direct.channel(replyHeaders))
    return undefined
  }
  if (isNotification(body) || isResponse(body)) {
    session.deliver(body)
    direct.accepted(replyHeaders)
    return undefined
  }
  return invalidMessage()
}

const invalidMessage = () => jsonRpcError(400, INVALID_REQUEST.code, INVALID_REQUEST.message)

/** Counts an open GET stream as activity, so a listening client's session does not expire. */
function trackStream(session: ClientSession, response: Response): Response {
  const body = response.body
  if (!body) return response
  const reader = body.getReader()
  session.openStreams++
  let done = false
  const finish = () => {
    if (done) return
    done = true
    session.openStreams--
    session.lastSeen = Date.now()
  }
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read()
        if (end) {
          finish()
          controller.close()
        } else controller.enqueue(value)
      } catch (err) {
        finish()
        controller.error(err)
      }
    },
    async cancel(reason) {
      finish()
      await reader.cancel(reason)
    },
  })
  return new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers })
}
