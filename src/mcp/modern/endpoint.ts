import {
  CLIENT_CAPABILITIES_META_KEY,
  createMcpHandler,
  ProtocolError,
  ProtocolErrorCode,
  ResourceNotFoundError,
  Server,
  type McpHttpHandler,
  type ServerCapabilities,
  type ServerContext,
} from '@modelcontextprotocol/server'
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpError, ResultSchema, type Result } from '@modelcontextprotocol/sdk/types.js'
import type { Identity } from '../../auth/incoming/index.js'
import type { Logger } from '../../log/index.js'
import { routeResource, type AggregatedView } from '../aggregator.js'
import type { InflightCall } from '../backend-connection.js'
import { errorText, type BackendRuntime } from '../backend-runtime.js'
import type { DirectReply, GatewayRouting } from '../gateway.js'
import { HttpRelay, RELAYED_METHODS, type RelayCallOptions } from '../relay/http-relay.js'
import { StatelessCallTable, type ReplyChannel } from '../routing/call-table.js'
import { isNotification, isRequest, type RpcMessage, type RpcRequest } from '../routing/json-rpc.js'
import { isRelayable, routeCall } from '../routing/route.js'
import { failureText, isTransportFailure, relayFailure, toolError } from '../session.js'
import { CallerPool, type Caller } from './caller-pool.js'
import { relayHeld } from './held-relay.js'
import { Interactions, type BackendRetry, type CallIo } from './input-required.js'
import { ListenHub } from './listen.js'
import { checkParamHeaders, markedTool, paramHeaders } from './tool-headers.js'
import { inboundOutcome, MODERN_PROTOCOL_VERSIONS } from './era.js'
import { isModernRelayable, withoutBackendIdentity, withVmcpEnvelope } from './modern-relay.js'
import { encodeModernAnswer, passesLadder, withoutEnvelope } from './wire.js'

export interface ModernEndpointOptions {
  routing: GatewayRouting
  logger: Logger
  serverInfo: { name: string; version: string }
  callTimeout: number
  discoveryTimeout: number
  /** A pooled (caller, backend) connection unused this long is closed. */
  idleTimeout: number
  /** Open subscriptions/listen streams at once (default 1024). */
  maxListeners?: number
  /** Calls held open at once waiting for a caller's input (a 2025 backend asked). */
  maxHeldCalls?: number
  /**
   * What seals vmcp's requestState: a key derived from material replicas share
   * (`deriveRequestStateKey`; absent: a random one per process) and the server it is for.
   */
  requestState: { key?: Uint8Array | undefined; audience: string }
}

/**
 * The MCP 2026-07-28 face of `/mcp`: stateless requests, `server/discover` and
 * `subscriptions/listen`, served by the v2 SDK's `createMcpHandler` in modern-only mode. Each
 * request gets a low-level v2 `Server` built from the caller's aggregated view; its handlers
 * route to the same backends, catalogs and names as 2025 sessions do.
 */
export interface ModernEndpoint {
  /**
   * Serves one authenticated request already classified `modern`; `body` is its parsed JSON.
   * `undefined` when it answered through `direct`.
   */
  handle(
    request: Request,
    identity: Identity,
    body: unknown,
    direct?: DirectReply,
  ): Promise<Response | undefined>
  /** Open pooled callers (identities with live backend connections or recent use). */
  readonly callers: number
  close(): Promise<void>
}

// MCP 2026-07-28 has no resources/subscribe: `subscribe` means resourceSubscriptions on
// subscriptions/listen (listen.ts), which vmcp feeds per URI from the owning backend.
const BASE_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  completions: {},
} satisfies ServerCapabilities

/** `server/discover`'s answer: what the v2 Server's handler returns for BASE_CAPABILITIES. */
const DISCOVER_RESULT = {
  supportedVersions: [...MODERN_PROTOCOL_VERSIONS],
  capabilities: BASE_CAPABILITIES,
}

export function createModernEndpoint(options: ModernEndpointOptions): ModernEndpoint {
  const { routing, logger } = options
  // What vmcp calls itself as a client of 2026-07-28 backends (the gateway's rule).
  const clientInfo = {
    name: `vmcp:${options.serverInfo.name}`,
    version: options.serverInfo.version,
  }
  const pool = new CallerPool({
    routing,
    logger,
    idleTimeout: options.idleTimeout,
    discoveryTimeout: options.discoveryTimeout,
    onUserListChanged: (caller, kind) => listen.listChanged(kind, caller.key),
    onResourceUpdated: (caller, uri) => listen.resourceUpdated(caller.key, uri),
  })
  const listen = new ListenHub({
    logger,
    serverInfo: options.serverInfo,
    maxListeners: options.maxListeners ?? 1024,
    maxListenersPerCaller: 32,
    keepAliveMs: 15_000,
    watch: async (caller, uris) => {
      const view = pool.view(caller)
      const watched: Array<{ runtime: BackendRuntime; uri: string }> = []
      await Promise.all(
        uris.map(async (uri) => {
          const runtime = routing.runtime(
            resourceOwner(routing, caller, view, uri, 'subscribe') ?? '',
          )
          if (!runtime) return
          try {
            await pool.watch(caller, runtime, uri)
            watched.push({ runtime, uri })
          } catch (err) {
            logger.warn(
              { backend: runtime.name, err: errorText(err) },
              'resource subscription failed',
            )
          }
        }),
      )
      const stop = () => {
        for (const w of watched)
          pool.unwatch(caller, w.runtime, w.uri).catch((err: unknown) => {
            logger.debug({ backend: w.runtime.name, err: errorText(err) }, 'unsubscribe failed')
          })
      }
      return { uris: watched.map((w) => w.uri), stop }
    },
  })
  const interactions = new Interactions({
    logger,
    holdTimeout: options.callTimeout,
    maxHolds: options.maxHeldCalls ?? 1000,
    maxHoldsPerCaller: 32,
    requestState: options.requestState,
  })
  // The v2 entry hands the factory the Request it was given; that is how a request's verified
  // identity reaches its per-request server without passing through the SDK.
  const callers = new WeakMap<Request, Caller>()

  const handler: McpHttpHandler = createMcpHandler(
    async ({ requestInfo }) => {
      const caller = requestInfo ? callers.get(requestInfo) : undefined
      if (!caller) throw new Error('modern request reached the handler without a caller')
      await pool.ensureUserCatalogs(caller)
      return buildServer(caller, pool.view(caller))
    },
    {
      legacy: 'reject',
      onerror: (err) => logger.debug({ err: err.message }, 'modern request rejected'),
    },
  )

  const unsubscribe = routing.onListChanged((kind) => listen.listChanged(kind))

  function buildServer(caller: Caller, view: AggregatedView): Server {
    const server = new Server(options.serverInfo, { capabilities: BASE_CAPABILITIES })
    const runtimeFor = (backend: string): BackendRuntime => {
      const runtime = routing.runtime(backend)
      if (!runtime)
        throw new ProtocolError(
          ProtocolErrorCode.InternalError,
          `backend "${backend}" is not configured`,
        )
      return runtime
    }
    const forward = (
      backend: string,
      method: string,
      params: Record<string, unknown>,
      ctx: ServerContext,
    ): Promise<Result> => {
      const runtime = runtimeFor(backend)
      const send = (io?: CallIo, retry?: BackendRetry) =>
        forwardRetrying({
          pool,
          caller,
          runtime,
          method,
          params,
          ctx,
          timeout: options.callTimeout,
          io,
          retry,
        })
      const target = INTERACTIVE[method]?.(params)
      if (target === undefined) return send()
      // tools/call, prompts/get, resources/read may ask the caller for input on the way.
      return interactions.run({ callerKey: caller.key, backend, method, target, ctx, start: send })
    }
    const forwardOrFail = async (
      backend: string,
      method: string,
      params: Record<string, unknown>,
      ctx: ServerContext,
    ) => {
      try {
        return await forward(backend, method, params, ctx)
      } catch (err) {
        if (err instanceof ProtocolError) throw err
        if (err instanceof McpError && !isTransportFailure(err)) throw err
        throw new ProtocolError(ProtocolErrorCode.InternalError, failureText(backend, err))
      }
    }
    const ownerOf = (uri: string): string => {
      const owner = resourceOwner(routing, caller, view, uri, 'read')
      if (owner === undefined) throw new ResourceNotFoundError(uri)
      return owner
    }

    for (const method of Object.keys(LISTS))
      server.setRequestHandler(method as 'tools/list', () => listResult(view, method) as never)

    server.setRequestHandler('tools/call', async (req, ctx) => {
      const route = view.toolRoutes.get(req.params.name)
      if (!route)
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${req.params.name}`)
      try {
        return (await forward(
          route.backend,
          'tools/call',
          { ...req.params, name: route.name },
          ctx,
        )) as never
      } catch (err) {
        // As for sessions: a backend's own JSON-RPC error is its answer; failing to reach it is
        // a tool error naming the backend, so the model sees which one failed.
        // vmcp's own refusals (a bad requestState) are errors, not the backend's tool result.
        if (err instanceof ProtocolError) throw err
        if (err instanceof McpError && !isTransportFailure(err)) throw err
        if (ctx.mcpReq.signal.aborted) throw err
        return toolError(route.backend, err) as never
      }
    })
    server.setRequestHandler('prompts/get', async (req, ctx) => {
      const route = view.promptRoutes.get(req.params.name)
      if (!route)
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `Unknown prompt: ${req.params.name}`,
        )
      return (await forwardOrFail(
        route.backend,
        'prompts/get',
        { ...req.params, name: route.name },
        ctx,
      )) as never
    })
    server.setRequestHandler('resources/read', async (req, ctx) => {
      return (await forwardOrFail(
        ownerOf(req.params.uri),
        'resources/read',
        { ...req.params },
        ctx,
      )) as never
    })
    server.setRequestHandler('completion/complete', async (req, ctx) => {
      const ref = req.params.ref
      if (ref.type === 'ref/prompt') {
        const route = view.promptRoutes.get(ref.name)
        if (!route)
          throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown prompt: ${ref.name}`)
        const params = { ...req.params, ref: { ...ref, name: route.name } }
        return (await forwardOrFail(route.backend, 'completion/complete', params, ctx)) as never
      }
      const owner =
        view.templateRoutes.find((t) => t.uriTemplate === ref.uri)?.backend ??
        routeResource(view, ref.uri)
      if (!owner)
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `Unknown resource template: ${ref.uri}`,
        )
      return (await forwardOrFail(owner, 'completion/complete', { ...req.params }, ctx)) as never
    })
    return server
  }

  const relay = routing.dispatcher
    ? new HttpRelay({
        dispatcher: routing.dispatcher,
        table: new StatelessCallTable(),
        callTimeout: options.callTimeout,
      })
    : undefined

  /**
   * Answers a request that passed the entry's checks without a v2 `Server`: lists from the
   * caller's view, and calls to Streamable HTTP backends through the raw relay, the routing
   * core 2025 sessions use. `false` when the request is not one of those (the SDK path takes
   * it, and produces every error).
   */
  async function answerDirectly(
    caller: Caller,
    message: RpcRequest,
    direct: DirectReply,
  ): Promise<boolean> {
    const answer = (result: Record<string, unknown>) => {
      const channel = direct.channel({})
      channel.stat = routing.metrics?.call(message.method, '')
      const reply = { jsonrpc: '2.0' as const, id: message.id, result }
      channel.finish(encodeModernAnswer(message.method, reply, options.serverInfo))
      return true
    }
    // The same for every caller (vmcp's capabilities do not depend on the view), as the v2
    // Server's own handler answers it (MCP 2026-07-28 §Discovery).
    if (message.method === 'server/discover') return answer(DISCOVER_RESULT)
    if (!(message.method in LISTS) && !(relay && RELAYED_METHODS.has(message.method))) return false
    if (!plausibleParams(message)) return false
    if (routing.runtimes().some((r) => r.identityScoped && !caller.userCatalogs.has(r.name)))
      await pool.ensureUserCatalogs(caller)
    const view = pool.view(caller)
    if (message.method in LISTS) return answer(listResult(view, message.method))
    const routed = routeCall(view, message.method, message.params ?? {})
    const runtime = routed && routing.runtime(routed.backend)
    if (!relay || !routed || !runtime) return false
    // A 2026-07-28-only backend: the raw relay speaks its revision (modern-relay.ts).
    const catalog = runtime.identityScoped ? caller.userCatalogs.get(runtime.name) : runtime.catalog
    const routedRequest = { jsonrpc: '2.0' as const, id: message.id, method: message.method }
    const inModern = isModernRelayable(runtime, { ...routedRequest, params: routed.params }, catalog)
    if (!inModern && !isRelayable(runtime)) return false
    // A 2026-07-28 backend asks for input with input_required, which only its own era carries:
    // such calls reach it through the v2 client (modern/backend-link.ts), not the raw relay.
    if (runtime.modern && mayNeedInput(message)) return false
    caller.relayedCalls++
    const base = direct.channel({})
    base.stat = routing.metrics?.call(message.method, routed.backend)
    const reply = new ModernReply(base, message.method, options.serverInfo, {
      refuse: (request) => relay.deliverResponse(refusal(request)),
      done: () => caller.relayedCalls--,
      // The backend's identity stays behind vmcp, as on the v2 link.
      answer: inModern ? withoutBackendIdentity : (m) => m,
    })
    const relayOptions = (retry?: BackendRetry): RelayCallOptions => {
      const params: Record<string, unknown> = { ...withoutEnvelope(routed.params) }
      // Only vmcp's unwrapped retry material reaches a backend, never what the caller sent.
      delete params.inputResponses
      delete params.requestState
      return {
        backend: inModern
          ? pool.modernRelayBackend(caller, runtime)
          : pool.relayBackend(caller, runtime),
        request: {
          ...routedRequest,
          params: inModern
            ? withVmcpEnvelope({ ...params, ...retry }, clientInfo)
            : { ...params, ...retry },
        },
        failure: relayFailure(runtime.name, message.method),
      }
    }
    const target = INTERACTIVE[message.method]?.(message.params ?? {})
    if (target !== undefined && mayNeedInput(message)) {
      relayHeld({
        relay,
        interactions,
        callerKey: caller.key,
        backend: runtime.name,
        target,
        message,
        options: relayOptions,
        reply,
        // A held call outlives its first request: its pooled session must not idle out meanwhile.
        busy: () => {
          caller.relayedCalls++
          return () => caller.relayedCalls--
        },
      })
    } else relay.call(message, relayOptions(), reply)
    return true
  }

  /**
   * A modern `tools/call` whose `Mcp-Param-*` headers disagree with its arguments for the
   * markings of the tool in the caller's view: -32020 with HTTP 400 (MCP 2026-07-28 §Custom
   * Headers, SEP-2243), before anything reaches a backend. Requests the entry's ladder refuses
   * are left to it.
   */
  async function refusedParamHeaders(
    caller: Caller,
    request: Request,
    body: unknown,
  ): Promise<Response | undefined> {
    if (!isRequest(body) || body.method !== 'tools/call') return undefined
    const outcome = inboundOutcome(request, body)
    if (outcome.kind !== 'modern' || outcome.messageKind !== 'request') return undefined
    const name = body.params?.name
    if (typeof name !== 'string') return undefined
    if (routing.runtimes().some((r) => r.identityScoped && !caller.userCatalogs.has(r.name)))
      await pool.ensureUserCatalogs(caller)
    const tool = markedTool(pool.view(caller).tools, name)
    const refusal = tool && checkParamHeaders(tool, body.params?.arguments, request.headers)
    if (!refusal) return undefined
    logger.debug({ tool: name, err: refusal.message }, 'modern request rejected')
    const error = { code: HEADER_MISMATCH, ...refusal }
    return Response.json({ jsonrpc: '2.0', id: body.id, error }, { status: 400 })
  }

  return {
    async handle(request, identity, body, direct) {
      await routing.whenStarted()
      const caller = pool.caller(identity)
      const message = passesLadder(request, body)
      if (message?.method === 'subscriptions/listen') {
        // Per-user backends first: their connections carry this user's list changes.
        await pool.ensureUserCatalogs(caller)
        return listen.serve(caller, message, request.signal)
      }
      const refused = await refusedParamHeaders(caller, request, message ?? body)
      if (refused) return refused
      if (message && direct && (await answerDirectly(caller, message, direct))) return undefined
      callers.set(request, caller)
      return handler.fetch(request, { parsedBody: body })
    },
    get callers() {
      return pool.size
    },
    async close() {
      unsubscribe()
      listen.closeAll()
      interactions.close()
      await handler.close()
      await pool.close()
    },
  }
}

// MCP 2026-07-28 HeaderMismatch: a standard or custom header disagrees with the body.
const HEADER_MISMATCH = -32020

/** The methods that may answer `input_required`, and what a retry of each must repeat. */
const INTERACTIVE: Record<string, (params: Record<string, unknown>) => string | undefined> = {
  'tools/call': (p) => p.name as string,
  'prompts/get': (p) => p.name as string,
  'resources/read': (p) => p.uri as string,
}

interface Forward {
  pool: CallerPool
  caller: Caller
  runtime: BackendRuntime
  method: string
  params: Record<string, unknown>
  ctx: ServerContext
  timeout: number
  /** Input, cancellation and progress of a call that may outlive this request (input-required.ts). */
  io?: CallIo | undefined
  /** A 2026-07-28 backend's retry: the caller's answers and the backend's own state. */
  retry?: BackendRetry | undefined
}

async function forwardRetrying(f: Forward): Promise<Result> {
  try {
    return await forwardOnce(f)
  } catch (err) {
    // Streamable HTTP §Session Management: 404 means the backend dropped our pooled session.
    if (!(err instanceof StreamableHTTPError && err.code === 404) || f.runtime.sharesConnection)
      throw err
    f.pool.drop(f.caller, f.runtime.name)
    return forwardOnce(f)
  }
}

/**
 * One request to a backend for a modern caller: cancellation follows the request's own stream
 * (closing it aborts `ctx.mcpReq.signal`), progress goes back on that stream under the
 * caller's token, and the 2026-07-28 envelope stays at vmcp (backends get plain params).
 */
async function forwardOnce({
  pool,
  caller,
  runtime,
  method,
  params,
  ctx,
  timeout,
  io,
  retry,
}: Forward): Promise<Result> {
  const conn = await pool.connection(caller, runtime)
  const out: Record<string, unknown> = { ...params }
  // Only vmcp's unwrapped retry material reaches a backend, never what the caller sent.
  delete out.inputResponses
  delete out.requestState
  Object.assign(out, retry)
  const meta = { ...((out._meta as Record<string, unknown> | undefined) ?? {}) }
  const clientToken = ctx.mcpReq._meta?.progressToken ?? meta.progressToken
  delete meta.progressToken
  for (const key of Object.keys(meta))
    if (key.startsWith('io.modelcontextprotocol/')) delete meta[key]
  // A 2026-07-28 backend asks only for what the caller can answer (it reads the caller's
  // declared capabilities, MCP 2026-07-28 §Multi Round-Trip Requests), not vmcp's.
  const declared = ctx.mcpReq.envelope?.[CLIENT_CAPABILITIES_META_KEY as never]
  if (conn.era === 'modern' && declared) meta[CLIENT_CAPABILITIES_META_KEY] = declared
  if (Object.keys(meta).length > 0) out._meta = meta
  else delete out._meta
  const call: InflightCall = {
    sessionId: '',
    // MCP 2026-07-28 has no pushed requests: a backend's request becomes input_required for the
    // caller (input-required.ts); without that path it fails at once instead of waiting.
    sendRequest: (r, signal) =>
      io
        ? io.ask(r, signal)
        : Promise.reject(
            new McpError(
              ProtocolErrorCode.InvalidRequest,
              `${r.method} cannot be relayed to a 2026-07-28 client through vmcp`,
            ),
          ),
    sendNotification: async () => undefined,
  }
  // Progress goes to the request the caller is waiting on now, under that request's token.
  const relayProgress = (p: Record<string, unknown>) => {
    const leg = io ? io.leg() : ctx
    const token = io ? leg.mcpReq._meta?.progressToken : clientToken
    if (token === undefined) return
    void leg.mcpReq
      .notify({ method: 'notifications/progress', params: { ...p, progressToken: token } } as never)
      .catch(() => undefined)
  }
  // The Mcp-Param-* headers the backend's tool marks (SEP-2243), derived from the arguments.
  const catalog = runtime.identityScoped ? caller.userCatalogs.get(runtime.name) : runtime.catalog
  const tool =
    conn.era === 'modern' && method === 'tools/call' && catalog && typeof out.name === 'string'
      ? markedTool(catalog.tools, out.name)
      : undefined
  conn.inflight.add(call)
  try {
    return await conn.client.request({ method, params: out } as never, ResultSchema, {
      ...(tool ? { headers: paramHeaders(tool, out.arguments) } : {}),
      signal: io ? io.signal : ctx.mcpReq.signal,
      timeout,
      resetTimeoutOnProgress: true,
      // A 2026-07-28 backend's input_required comes back as it is, for the caller to answer
      // (input-required.ts wraps it); the v1 client of a 2025 backend ignores this.
      allowInputRequired: true,
      ...(clientToken !== undefined || io ? { onprogress: relayProgress } : {}),
    })
  } catch (err) {
    if (isTransportFailure(err) && runtime.reportFailure(err)) pool.drop(caller, runtime.name)
    throw err
  } finally {
    conn.inflight.delete(call)
  }
}

type ListMethod = 'tools/list' | 'prompts/list' | 'resources/list' | 'resources/templates/list'

/** The list methods and how each reads its view; results are built once per view. */
const LISTS: Record<ListMethod, (view: AggregatedView) => Record<string, unknown>> = {
  'tools/list': (view) => ({ tools: view.tools.map(modernTool) }),
  'prompts/list': (view) => ({ prompts: view.prompts }),
  'resources/list': (view) => ({ resources: view.resources }),
  'resources/templates/list': (view) => ({ resourceTemplates: view.resourceTemplates }),
}
const listResults = new WeakMap<AggregatedView, Map<string, Record<string, unknown>>>()

function listResult(view: AggregatedView, method: string): Record<string, unknown> {
  let built = listResults.get(view)
  if (!built) listResults.set(view, (built = new Map()))
  let result = built.get(method)
  if (!result) built.set(method, (result = LISTS[method as ListMethod](view)))
  return result
}

/**
 * A tool as 2026-07-28 lists it: without `execution` (removed there); its `x-mcp-header`
 * markings shown (vmcp checks the headers they ask for, `refusedParamHeaders`).
 */
function modernTool(tool: AggregatedView['tools'][number]) {
  if (!('execution' in tool)) return tool
  const { execution: _execution, ...rest } = tool
  return rest
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Params the SDK would accept as they stand, for the methods answered directly; anything odd
 * goes to the SDK path, whose schema validation answers it with -32602.
 */
function plausibleParams(message: RpcRequest): boolean {
  const p = message.params ?? {}
  if (!isObject(p)) return false
  switch (message.method) {
    case 'tools/call':
    case 'prompts/get':
      return typeof p.name === 'string' && (p.arguments === undefined || isObject(p.arguments))
    case 'resources/read':
      return typeof p.uri === 'string'
    case 'completion/complete': {
      const arg = p.argument
      return (
        isObject(p.ref) &&
        isObject(arg) &&
        typeof arg.name === 'string' &&
        typeof arg.value === 'string'
      )
    }
    default:
      return p.cursor === undefined || typeof p.cursor === 'string'
  }
}

/**
 * A call that may take more than one round trip: a retry (it carries `requestState` or
 * `inputResponses`), or one whose caller declared a capability a backend's request could use.
 * Those run under input-required.ts (held-relay.ts), which holds a call open between requests.
 */
function mayNeedInput(message: RpcRequest): boolean {
  if (!(message.method in INTERACTIVE)) return false
  const p = message.params ?? {}
  if (p.requestState !== undefined || p.inputResponses !== undefined) return true
  const meta = p._meta as Record<string, unknown> | undefined
  const declared = meta?.[CLIENT_CAPABILITIES_META_KEY] as Record<string, unknown> | undefined
  return Object.values(INPUT_CAPABILITY).some((c) => declared?.[c] !== undefined)
}

// The client capability each request a 2025 backend may send during a call needs.
const INPUT_CAPABILITY: Record<string, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
}

// The caller declared nothing a backend's request needs (see mayNeedInput), so it fails at once,
// as input-required.ts fails it.
function refusal(request: RpcRequest) {
  return {
    jsonrpc: '2.0' as const,
    id: request.id,
    error: {
      code: ProtocolErrorCode.InvalidRequest,
      message: `${request.method} cannot be relayed: the 2026-07-28 client did not declare ${INPUT_CAPABILITY[request.method] ?? 'it'}`,
    },
  }
}

interface ModernReplyHooks {
  /** A request the backend sent: refused (see `refusal`). */
  refuse(request: RpcRequest): void
  /** The call ended, answered or not. */
  done(): void
  /** The backend's answer as vmcp passes it on, before the revision's encoding. */
  answer(message: RpcMessage): RpcMessage
}

/**
 * A relayed call's reply as a 2026-07-28 client gets it: progress on the request's own stream,
 * the answer encoded for the revision, requests the backend sends refused (see `refusal`), and
 * other backend notifications kept at vmcp (the client asked for none of them).
 */
class ModernReply implements ReplyChannel {
  readonly #base: ReplyChannel
  readonly #method: string
  readonly #serverInfo: { name: string; version: string }
  readonly #hooks: ModernReplyHooks
  #done = false

  constructor(
    base: ReplyChannel,
    method: string,
    serverInfo: { name: string; version: string },
    hooks: ModernReplyHooks,
  ) {
    this.#base = base
    this.#method = method
    this.#serverInfo = serverInfo
    this.#hooks = hooks
    base.onClose(() => this.#end())
  }

  get closed(): boolean {
    return this.#base.closed
  }

  onClose(listener: () => void): void {
    this.#base.onClose(listener)
  }

  event(message: RpcMessage): void {
    if (isRequest(message)) return this.#hooks.refuse(message)
    if (isNotification(message) && message.method === 'notifications/progress')
      this.#base.event(message)
  }

  finish(message: RpcMessage): void {
    this.#end()
    const answer = this.#hooks.answer(message)
    const error = 'error' in answer ? answer.error : undefined
    // MCP 2026-07-28 §Missing Required Client Capability: on HTTP, 400 Bad Request.
    const status = error?.code === ProtocolErrorCode.MissingRequiredClientCapability ? 400 : 200
    this.#base.finish(encodeModernAnswer(this.#method, answer, this.#serverInfo), status)
  }

  #end(): void {
    if (this.#done) return
    this.#done = true
    this.#hooks.done()
  }
}

/**
 * The backend that owns a resource URI in the caller's view. As for sessions: an unlisted URI
 * goes to the only backend that serves resources (for `subscribe`, that can subscribe).
 */
function resourceOwner(
  routing: GatewayRouting,
  caller: Caller,
  view: AggregatedView,
  uri: string,
  need: 'read' | 'subscribe',
): string | undefined {
  const listed = routeResource(view, uri)
  if (listed) return listed
  const able = routing.runtimes().filter((r) => {
    const caps = (r.identityScoped ? caller.userCatalogs.get(r.name) : r.catalog)?.capabilities
      .resources
    return caps && (need === 'read' || caps.subscribe)
  })
  return able.length === 1 ? able[0]?.name : undefined
}
