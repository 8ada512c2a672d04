import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CompleteResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  GetPromptResultSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  ReadResourceResultSchema,
  ResultSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type ClientCapabilities,
  type LoggingLevel,
  type Notification,
  type Request,
  type Result,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { Dispatcher } from 'undici'
import type { z } from 'zod'
import type { Identity } from '../auth/incoming/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import type { Metrics } from '../metrics/index.js'
import { routeResource, type AggregatedView } from './aggregator.js'
import type { BackendConnection, ConnectionSink, InflightCall } from './backend-connection.js'
import { errorText, type BackendRuntime } from './backend-runtime.js'
import type { Catalog, ListKind } from './catalog.js'
import { discoverCatalog } from './catalog.js'
import { HttpRelay, RELAYED_METHODS, type RelayBackend, type RelayFailure } from './relay/http-relay.js'
import { CallTable, type ReplyChannel } from './routing/call-table.js'
import { isRelayable, notifiedList, relayBackendFor, routeCall } from './routing/route.js'
import {
  isResponse,
  type RpcMessage,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
} from './routing/json-rpc.js'
import { SHARED_SCHEMA_VALIDATOR } from './schema-validator.js'
import { SdkServerBridge } from './sdk-server-bridge.js'

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>

/** This session's connection to one backend: opening, then `open` once it is ready. */
interface ConnectionEntry {
  generation: number
  conn: Promise<BackendConnection>
  open: BackendConnection | undefined
}

/** What a session needs from the gateway that owns it. */
export interface SessionHost {
  readonly logger: Logger
  readonly serverInfo: { name: string; version: string }
  readonly callTimeout: number
  readonly discoveryTimeout: number
  /** The shared outbound dispatcher: request/response methods to HTTP backends skip the SDK. */
  readonly dispatcher: Dispatcher | undefined
  /** Request metrics; each call's answer is recorded on its reply channel. */
  readonly metrics?: Metrics | undefined
  runtime(name: string): BackendRuntime | undefined
  /** All backends, in config order. */
  runtimes(): readonly BackendRuntime[]
  /** The view over shared catalogs plus this session's per-user catalogs. */
  viewFor(session: ClientSession): AggregatedView
  sessionClosed(session: ClientSession): void
  subscribeShared(session: ClientSession, runtime: BackendRuntime, uri: string, on: boolean): Promise<void>
}

/** Raised when a backend cannot be reached; becomes a tool error or JSON-RPC error naming it. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: string,
    reason: string,
  ) {
    super(`backend "${backend}" is unavailable: ${reason}`)
    this.name = 'BackendUnavailableError'
  }
}

export const SERVER_CAPABILITIES = {
  tools: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  prompts: { listChanged: true },
  completions: {},
  logging: {},
} as const

/**
 * One client session at `/mcp`: an MCP server facing the client, and this session's own
 * connections to backends (opened on first use, closed with the session).
 */
export class ClientSession {
  readonly server: Server
  readonly transport: WebStandardStreamableHTTPServerTransport
  /** The client's requests in flight, by vmcp's own ids (whichever path serves them). */
  readonly calls = new CallTable()
  readonly #bridge: SdkServerBridge
  readonly #relay: HttpRelay | undefined
  readonly #relayBackends = new Map<string, RelayBackend>()
  /** The latest verified identity of the owner: refreshed tokens reach backends at once. */
  identity: Identity
  readonly ownerKey: string
  lastSeen = Date.now()
  openStreams = 0
  /** The 2025 revision negotiated at initialize (modern/era.ts aligns stray headers to it). */
  protocolVersion = ''
  /** A 2026-07-28 header on this session was already logged once. */
  eraMismatchLogged = false
  /** Resources this session subscribed to, and the backend each was subscribed at. */
  readonly subscriptions = new Map<string, string>()
  /** Catalogs of identity-scoped backends, discovered with this session's credentials. */
  readonly userCatalogs = new Map<string, Catalog>()
  #view: AggregatedView | undefined
  #connections = new Map<string, ConnectionEntry>()
  #logLevel: LoggingLevel | undefined
  #closed = false
  readonly #host: SessionHost

  constructor(host: SessionHost, identity: Identity, ownerKey: string, generateId: () => string) {
    this.#host = host
    this.identity = identity
    this.ownerKey = ownerKey
    this.server = new Server(host.serverInfo, {
      capabilities: SERVER_CAPABILITIES,
      jsonSchemaValidator: SHARED_SCHEMA_VALIDATOR,
    })
    this.transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: generateId,
      // The gateway reads and bounds the body itself; the SDK sees the parsed JSON.
      enableJsonResponse: false,
    })
    this.#bridge = new SdkServerBridge(this.transport, this.calls)
    this.#bridge.onclose = () => void this.close()
    this.#relay = host.dispatcher
      ? new HttpRelay({ dispatcher: host.dispatcher, table: this.calls, callTimeout: host.callTimeout })
      : undefined
    this.#installHandlers()
  }

  get id(): string {
    return this.transport.sessionId ?? ''
  }

  /** The session id as logs may show it: the id is a bearer credential for the session. */
  get logId(): string {
    return fingerprint(this.id)
  }

  get busy(): boolean {
    return this.openStreams > 0
  }

  async start(): Promise<void> {
    await this.server.connect(this.#bridge)
  }

  /** A client request of this session, answered on `channel`. */
  dispatch(request: RpcRequest, channel: ReplyChannel): void {
    const relayed = this.#relay && RELAYED_METHODS.has(request.method) ? this.#relayRoute(request) : undefined
    const metrics = this.#host.metrics
    if (relayed && this.#relay) {
      if (metrics) channel.stat = metrics.call(request.method, relayed.backend.name)
      this.#relay.call(request, relayed, channel)
    } else {
      if (metrics) channel.stat = metrics.call(request.method, this.#backendOf(request))
      this.#bridge.request(request, channel)
    }
  }

  /** The backend a call is for ('' when vmcp answers it itself, or the name is unknown). */
  #backendOf(request: RpcRequest): string {
    return request.params ? (routeCall(this.view(), request.method, request.params)?.backend ?? '') : ''
  }

  /** A client notification, or its answer to a request vmcp sent it. */
  deliver(message: RpcMessage): void {
    if (this.#relay?.ownsResponse(message) && isResponse(message)) this.#relay.deliverResponse(message)
    else this.#bridge.deliver(message)
  }

  /**
   * Where a request/response method goes when the relay can take it: a known route to a healthy
   * Streamable HTTP backend, decided without waiting. Anything else (unknown names, per-user
   * catalogs not discovered yet, stdio and SSE backends) takes the SDK path, which also
   * produces the errors.
   */
  #relayRoute(request: RpcRequest) {
    for (const r of this.#host.runtimes()) if (r.identityScoped && !this.userCatalogs.has(r.name)) return undefined
    const routed = routeCall(this.view(), request.method, request.params ?? {})
    const runtime = routed && this.#host.runtime(routed.backend)
    if (!routed || !isRelayable(runtime)) return undefined
    // A 2026-07-28 backend asks for input with input_required, which only the v2 client turns
    // into this session's elicitation and sampling requests (modern/backend-link.ts).
    if (runtime.modern && Object.keys(this.#downstreamCapabilities()).length > 0) return undefined
    return {
      backend: this.#relayBackend(runtime),
      request: { jsonrpc: '2.0' as const, id: request.id, method: request.method, params: routed.params },
      failure: relayFailure(runtime.name, request.method),
    }
  }

  #relayBackend(runtime: BackendRuntime): RelayBackend {
    const known = this.#relayBackends.get(runtime.name)
    if (known) return known
    const backend = relayBackendFor(runtime, {
      identity: () => this.identity,
      connection: () => this.connectionFor(runtime),
      current: async () => this.#connections.get(runtime.name)?.conn.catch(() => undefined),
      open: () => this.#openConnection(runtime),
      drop: (conn) => this.#dropConnection(runtime.name, conn),
      catalogNotification: (n) => void this.#relayedCatalogNotification(runtime, n),
    })
    this.#relayBackends.set(runtime.name, backend)
    return backend
  }

  view(): AggregatedView {
    this.#view ??= this.#host.viewFor(this)
    return this.#view
  }

  /**
   * A backend was removed or replaced (hot reload, registry listing): its per-user catalog, relay
   * route and this session's connection to it go, so a successor under the same name starts clean.
   */
  forgetBackend(name: string): void {
    this.userCatalogs.delete(name)
    this.#relayBackends.delete(name)
    const entry = this.#connections.get(name)
    this.#connections.delete(name)
    void entry?.conn.then((c) => c.close()).catch(() => undefined)
    this.invalidateView()
  }

  /** Drops the cached view; the next list or call rebuilds it. */
  invalidateView(): void {
    this.#view = undefined
  }

  async notifyListChanged(kind: ListKind | 'resources-all'): Promise<void> {
    this.invalidateView()
    if (!this.server.transport) return
    try {
      if (kind === 'tools') await this.server.sendToolListChanged()
      else if (kind === 'prompts') await this.server.sendPromptListChanged()
      else await this.server.sendResourceListChanged()
    } catch (err) {
      this.#host.logger.debug({ session: this.logId, err: errorText(err) }, 'list_changed not delivered')
    }
  }

  async resourceUpdated(uri: string): Promise<void> {
    if (!this.subscriptions.has(uri)) return
    await this.server.sendResourceUpdated({ uri }).catch(() => undefined)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#host.sessionClosed(this)
    this.calls.clear('session closed')
    const conns = [...this.#connections.values()]
    this.#connections.clear()
    await Promise.allSettled(conns.map(async (c) => (await c.conn).close()))
    await this.server.close().catch(() => undefined)
  }

  /** This session's connection to a backend: the shared process for stdio, else its own. */
  async connectionFor(runtime: BackendRuntime): Promise<BackendConnection> {
    if (runtime.health === 'unhealthy' || runtime.health === 'starting') {
      throw new BackendUnavailableError(runtime.name, runtime.lastError ?? 'not connected yet')
    }
    if (runtime.sharesConnection) {
      if (!runtime.shared || runtime.shared.closed) throw new BackendUnavailableError(runtime.name, 'not connected')
      return runtime.shared
    }
    const existing = this.#connections.get(runtime.name)
    if (existing) {
      const conn = await existing.conn.catch(() => undefined)
      // A backend that restarted since this connection opened no longer knows its session.
      if (conn && !conn.closed && existing.generation === runtime.generation) return conn
      this.#dropConnection(runtime.name, conn)
    }
    const opening = runtime.openConnection(() => this.identity, this.#downstreamCapabilities(), this.#sink())
    const entry: ConnectionEntry = { generation: runtime.generation, conn: opening, open: undefined }
    this.#connections.set(runtime.name, entry)
    try {
      const conn = await opening
      if (this.#logLevel) await conn.client.setLoggingLevel(this.#logLevel).catch(() => undefined)
      await this.#resubscribe(conn)
      entry.open = conn
      return conn
    } catch (err) {
      this.#connections.delete(runtime.name)
      runtime.reportFailure(err)
      throw new BackendUnavailableError(runtime.name, errorText(err))
    }
  }

  /** What {@link connectionFor} would return for an HTTP backend without waiting, if anything. */
  #openConnection(runtime: BackendRuntime): BackendConnection | undefined {
    const entry = this.#connections.get(runtime.name)
    const conn = entry?.open
    return conn && !conn.closed && entry.generation === runtime.generation ? conn : undefined
  }

  /** Discovers identity-scoped backends for this user before the first listing. */
  async ensureUserCatalogs(runtimes: Iterable<BackendRuntime>): Promise<void> {
    const pending: Promise<void>[] = []
    for (const runtime of runtimes) {
      if (!runtime.identityScoped || this.userCatalogs.has(runtime.name)) continue
      pending.push(
        (async () => {
          try {
            const conn = await this.connectionFor(runtime)
            const catalog = await discoverCatalog(conn.client, { timeout: this.#host.discoveryTimeout })
            this.userCatalogs.set(runtime.name, catalog)
            this.invalidateView()
          } catch (err) {
            this.#host.logger.warn(
              { backend: runtime.name, session: this.logId, err: errorText(err) },
              'per-user discovery failed',
            )
          }
        })(),
      )
    }
    await Promise.all(pending)
  }

  #dropConnection(backend: string, conn: BackendConnection | undefined): void {
    this.#connections.delete(backend)
    void conn?.close()
  }

  #downstreamCapabilities(): ClientCapabilities {
    const caps = this.server.getClientCapabilities() ?? {}
    const out: ClientCapabilities = {}
    if (caps.elicitation) out.elicitation = caps.elicitation
    if (caps.sampling) out.sampling = caps.sampling
    if (caps.roots) out.roots = caps.roots
    return out
  }

  #sink(): ConnectionSink {
    return {
      request: (request, signal) =>
        this.server.request(request as ServerRequest, ResultSchema, { signal }) as Promise<Result>,
      notify: (n) => this.server.notification(n as ServerNotification),
      listChanged: (kind, conn) => void this.#onBackendListChanged(kind, conn),
      resourceUpdated: (uri) => void this.resourceUpdated(uri),
      closed: (conn) => {
        const entry = this.#connections.get(conn.backend)
        void entry?.conn.then((c) => {
          if (c === conn && this.#connections.get(conn.backend) === entry) {
            this.#connections.delete(conn.backend)
          }
        })
      },
    }
  }

  /** What the SDK path's connection sink does with the same notifications. */
  async #relayedCatalogNotification(runtime: BackendRuntime, n: RpcNotification): Promise<void> {
    if (n.method === 'notifications/resources/updated') {
      const uri = n.params?.uri
      if (typeof uri === 'string') await this.resourceUpdated(uri)
      return
    }
    const conn = await this.connectionFor(runtime).catch(() => undefined)
    if (conn) await this.#onBackendListChanged(notifiedList(n.method), conn)
  }

  async #onBackendListChanged(kind: ListKind | 'resources-all', conn: BackendConnection): Promise<void> {
    const runtime = this.#host.runtime(conn.backend)
    if (!runtime) return
    try {
      // A per-user catalog changes for this session only; a shared one for everyone (gateway).
      const own = this.userCatalogs.get(runtime.name)
      await runtime.refresh(kind, conn, own)
      if (own) await this.notifyListChanged(kind)
    } catch (err) {
      this.#host.logger.warn({ backend: runtime.name, err: errorText(err) }, 'refresh after list_changed failed')
    }
  }

  async #prepare(): Promise<AggregatedView> {
    await this.ensureUserCatalogs(this.#host.runtimes())
    return this.view()
  }

  /**
   * Sends one request to a backend on behalf of the client request in `extra`: cancellation
   * follows `extra.signal`, progress is relayed under the client's own token, and any
   * elicitation/sampling the backend sends meanwhile goes back on this request's stream.
   */
  async #forward<S extends z.ZodType>(
    runtime: BackendRuntime,
    request: Request,
    schema: S,
    extra: Extra,
  ): Promise<z.infer<S>> {
    try {
      return await this.#forwardOnce(runtime, request, schema, extra)
    } catch (err) {
      // Streamable HTTP §Session Management: 404 means the backend dropped our session (it
      // restarted or expired it). Open a fresh one and try once more.
      if (!(err instanceof StreamableHTTPError && err.code === 404) || runtime.sharesConnection) throw err
      const entry = this.#connections.get(runtime.name)
      this.#dropConnection(runtime.name, entry ? await entry.conn.catch(() => undefined) : undefined)
      return this.#forwardOnce(runtime, request, schema, extra)
    }
  }

  async #forwardOnce<S extends z.ZodType>(
    runtime: BackendRuntime,
    request: Request,
    schema: S,
    extra: Extra,
  ): Promise<z.infer<S>> {
    const conn = await this.connectionFor(runtime)
    const params = { ...(request.params ?? {}) } as Record<string, unknown>
    const meta = { ...((params._meta as Record<string, unknown> | undefined) ?? {}) }
    const clientToken = meta.progressToken
    delete meta.progressToken
    if (Object.keys(meta).length > 0) params._meta = meta
    else delete params._meta
    const call: InflightCall = {
      sessionId: this.id,
      sendRequest: (r, signal) =>
        extra.sendRequest(r as ServerRequest, ResultSchema, { signal }) as Promise<Result>,
      sendNotification: (n: Notification) => extra.sendNotification(n as ServerNotification),
    }
    conn.inflight.add(call)
    try {
      return (await conn.client.request({ method: request.method, params } as never, schema as never, {
        signal: extra.signal,
        timeout: this.#host.callTimeout,
        resetTimeoutOnProgress: true,
        // A 2026-07-28 backend's input requests for this call go to this session (a shared
        // stdio process serves other sessions' calls meanwhile).
        askCaller: call.sendRequest,
        ...(clientToken !== undefined
          ? {
              onprogress: (p) =>
                void extra
                  .sendNotification({
                    method: 'notifications/progress',
                    params: { ...p, progressToken: clientToken as string | number },
                  })
                  .catch(() => undefined),
            }
          : {}),
      })) as z.infer<S>
    } catch (err) {
      if (isTransportFailure(err) && runtime.reportFailure(err)) this.#dropConnection(runtime.name, conn)
      throw err
    } finally {
      conn.inflight.delete(call)
    }
  }

  #runtimeFor(backend: string): BackendRuntime {
    const runtime = this.#host.runtime(backend)
    if (!runtime) throw new McpError(ErrorCode.InternalError, `backend "${backend}" is not configured`)
    return runtime
  }

  #installHandlers(): void {
    const s = this.server
    s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: (await this.#prepare()).tools }))
    s.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: (await this.#prepare()).prompts }))
    s.setRequestHandler(ListResourcesRequestSchema, async () => ({
      resources: (await this.#prepare()).resources,
    }))
    s.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
      resourceTemplates: (await this.#prepare()).resourceTemplates,
    }))

    s.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      const route = (await this.#prepare()).toolRoutes.get(req.params.name)
      if (!route) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${req.params.name}`)
      const runtime = this.#runtimeFor(route.backend)
      try {
        return await this.#forward(
          runtime,
          { method: 'tools/call', params: { ...req.params, name: route.name } },
          // Relayed as the backend sent it: the client validates the result against the tool.
          ResultSchema,
          extra,
        )
      } catch (err) {
        // A backend's own JSON-RPC error is its answer; anything else is a failure to reach it,
        // reported as a tool error so the model sees which backend failed.
        if (err instanceof McpError && !isTransportFailure(err)) throw err
        if (extra.signal.aborted) throw err
        return toolError(route.backend, err)
      }
    })

    s.setRequestHandler(GetPromptRequestSchema, async (req, extra) => {
      const route = (await this.#prepare()).promptRoutes.get(req.params.name)
      if (!route) throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${req.params.name}`)
      return this.#forwardOrFail(
        route.backend,
        { method: 'prompts/get', params: { ...req.params, name: route.name } },
        GetPromptResultSchema,
        extra,
      )
    })

    s.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => {
      const backend = this.#routeUri(await this.#prepare(), req.params.uri)
      return this.#forwardOrFail(backend, req, ReadResourceResultSchema, extra)
    })

    s.setRequestHandler(SubscribeRequestSchema, (req, extra) => this.#subscription(req, true, extra))
    s.setRequestHandler(UnsubscribeRequestSchema, (req, extra) => this.#subscription(req, false, extra))

    s.setRequestHandler(CompleteRequestSchema, async (req, extra) => {
      const routed = routeCall(await this.#prepare(), 'completion/complete', req.params)
      if (!routed) {
        const ref = req.params.ref
        const unknown = ref.type === 'ref/prompt' ? `Unknown prompt: ${ref.name}` : `Unknown resource template: ${ref.uri}`
        throw new McpError(ErrorCode.InvalidParams, unknown)
      }
      return this.#forwardOrFail(
        routed.backend,
        { method: 'completion/complete', params: routed.params },
        CompleteResultSchema,
        extra,
      )
    })

    s.setRequestHandler(SetLevelRequestSchema, async (req) => {
      this.#logLevel = req.params.level
      // Fan out to every backend this session already talks to; later connections get it on open.
      const targets = new Set<BackendConnection>()
      for (const c of this.#connections.values()) targets.add(await c.conn.catch(() => undefined as never))
      for (const runtime of this.#host.runtimes()) {
        if (runtime.sharesConnection && runtime.shared) targets.add(runtime.shared)
      }
      await Promise.allSettled(
        [...targets]
          .filter((c) => c && !c.closed && c.client.getServerCapabilities()?.logging)
          .map((c) => c.client.setLoggingLevel(req.params.level)),
      )
      return {}
    })
  }

  /** resources/subscribe and /unsubscribe: shared stdio processes subscribe once for all sessions. */
  async #subscription(
    req: { method: string; params: { uri: string } },
    on: boolean,
    extra: Extra,
  ): Promise<Record<string, never>> {
    const uri = req.params.uri
    const backend = this.#routeUri(await this.#prepare(), uri, 'subscribe')
    const runtime = this.#runtimeFor(backend)
    if (!on) this.subscriptions.delete(uri)
    if (runtime.sharesConnection) {
      if (on) this.subscriptions.set(uri, backend)
      await this.#host.subscribeShared(this, runtime, uri, on)
      return {}
    }
    const conn = await this.connectionFor(runtime).catch((err: unknown) => {
      throw new McpError(ErrorCode.InternalError, failureText(backend, err))
    })
    // MCP 2026-07-28 has no resources/subscribe: a 2026-07-28 backend's link adds the URI to the
    // filter of its subscriptions/listen stream instead.
    if (conn.era === 'modern') {
      const options = { signal: extra.signal, timeout: this.#host.callTimeout }
      await (on ? conn.client.subscribeResource({ uri }, options) : conn.client.unsubscribeResource({ uri }, options))
    } else await this.#forwardOrFail(backend, req as Request, ResultSchema, extra)
    // Kept for the connections opened later (the backend restarted): they subscribe again.
    if (on) this.subscriptions.set(uri, backend)
    return {}
  }

  /**
   * A backend reconnected (it restarted, or vmcp lost it for a while): it forgot what this
   * session subscribed to, so a fresh connection subscribes again (see connectionFor).
   */
  async backendReconnected(runtime: BackendRuntime): Promise<void> {
    if (runtime.sharesConnection || this.#closed) return
    if (![...this.subscriptions.values()].includes(runtime.name)) return
    await this.connectionFor(runtime).catch((err: unknown) => {
      this.#host.logger.debug({ backend: runtime.name, session: this.logId, err: errorText(err) }, 'resubscribe failed')
    })
  }

  /** Subscribes a new connection to what this session watches at its backend. */
  async #resubscribe(conn: BackendConnection): Promise<void> {
    const uris = [...this.subscriptions].filter(([, backend]) => backend === conn.backend).map(([uri]) => uri)
    await Promise.all(
      uris.map((uri) =>
        conn.client.subscribeResource({ uri }, { timeout: this.#host.discoveryTimeout }).catch((err: unknown) => {
          this.#host.logger.warn({ backend: conn.backend, session: this.logId, err: errorText(err) }, 'resubscribe failed')
        }),
      ),
    )
  }

  #routeUri(view: AggregatedView, uri: string, need: 'read' | 'subscribe' = 'read'): string {
    const listed = routeResource(view, uri)
    if (listed) return listed
    // A URI no catalog lists (dynamic, or not yet created) belongs to the only backend that
    // serves resources, when there is exactly one; with several it would be a guess.
    const able = this.#host.runtimes().filter((r) => {
      const caps = (r.identityScoped ? this.userCatalogs.get(r.name) : r.catalog)?.capabilities.resources
      return caps && (need === 'read' || caps.subscribe)
    })
    if (able.length === 1 && able[0]) return able[0].name
    // MCP resources: -32002 is "Resource not found".
    throw new McpError(-32002, `Resource not found: ${uri}`, { uri })
  }

  async #forwardOrFail<S extends z.ZodType>(
    backend: string,
    request: Request,
    schema: S,
    extra: Extra,
  ): Promise<z.infer<S>> {
    try {
      return await this.#forward(this.#runtimeFor(backend), request, schema, extra)
    } catch (err) {
      if (err instanceof McpError && !isTransportFailure(err)) throw err
      throw new McpError(ErrorCode.InternalError, failureText(backend, err))
    }
  }
}

// Errors the SDK raises for the link itself rather than for the backend's answer.
export function isTransportFailure(err: unknown): boolean {
  if (err instanceof BackendUnavailableError) return true
  if (err instanceof McpError) {
    return err.code === ErrorCode.ConnectionClosed || err.code === ErrorCode.RequestTimeout
  }
  return true
}

export function failureText(backend: string, err: unknown): string {
  if (err instanceof BackendUnavailableError) return err.message
  if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
    return `backend "${backend}" did not answer in time`
  }
  return `backend "${backend}" failed: ${errorText(err)}`
}

/** How a relayed call that got no answer reads to the client (either era). */
export function relayFailure(backend: string, method: string): (f: RelayFailure) => RpcResponse {
  return (f) => {
    const text = f.kind === 'timeout' ? `backend "${backend}" did not answer in time` : failureText(backend, f.error)
    // A tool that cannot be reached is a tool error, so the model sees which backend failed.
    if (method === 'tools/call') return { jsonrpc: '2.0', id: null, result: toolError(backend, text) }
    return { jsonrpc: '2.0', id: null, error: { code: ErrorCode.InternalError, message: text } }
  }
}

export function toolError(backend: string, err: unknown) {
  const text = typeof err === 'string' ? err : failureText(backend, err)
  return { isError: true, content: [{ type: 'text' as const, text }] }
}
