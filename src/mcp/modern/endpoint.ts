import {
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
import type { BackendRuntime } from '../backend-runtime.js'
import type { GatewayRouting } from '../gateway.js'
import { failureText, isTransportFailure, toolError } from '../session.js'
import { CallerPool, type Caller } from './caller-pool.js'
import { Interactions, type BackendRetry, type CallIo } from './input-required.js'
import { stripMcpHeaderMarkings } from './tool-headers.js'

export interface ModernEndpointOptions {
  routing: GatewayRouting
  logger: Logger
  serverInfo: { name: string; version: string }
  callTimeout: number
  discoveryTimeout: number
  /** A pooled (caller, backend) connection unused this long is closed. */
  idleTimeout: number
  /** Calls held open at once waiting for a caller's input (a 2025 backend asked). */
  maxHeldCalls?: number
}

/**
 * The MCP 2026-07-28 face of `/mcp`: stateless requests, `server/discover` and
 * `subscriptions/listen`, served by the v2 SDK's `createMcpHandler` in modern-only mode. Each
 * request gets a low-level v2 `Server` built from the caller's aggregated view; its handlers
 * route to the same backends, catalogs and names as 2025 sessions do.
 */
export interface ModernEndpoint {
  /** Serves one authenticated request already classified `modern`; `body` is its parsed JSON. */
  handle(request: Request, identity: Identity, body: unknown): Promise<Response>
  /** Open pooled callers (identities with live backend connections or recent use). */
  readonly callers: number
  close(): Promise<void>
}

// MCP 2026-07-28 has no resources/subscribe: updates arrive on subscriptions/listen, which
// vmcp does not yet feed per URI, so it does not advertise `subscribe` to modern callers.
const BASE_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { listChanged: true },
  completions: {},
} satisfies ServerCapabilities

export function createModernEndpoint(options: ModernEndpointOptions): ModernEndpoint {
  const { routing, logger } = options
  const pool = new CallerPool({
    routing,
    logger,
    idleTimeout: options.idleTimeout,
    discoveryTimeout: options.discoveryTimeout,
  })
  const interactions = new Interactions({
    logger,
    holdTimeout: options.callTimeout,
    maxHolds: options.maxHeldCalls ?? 1000,
    maxHoldsPerCaller: 32,
  })
  // The v2 entry hands the factory the Request it was given; that is how a request's verified
  // identity reaches its per-request server without passing through the SDK.
  const callers = new WeakMap<Request, Caller>()

  const handler: McpHttpHandler = createMcpHandler(
    async ({ requestInfo }) => {
      const caller = requestInfo ? callers.get(requestInfo) : undefined
      if (!caller) throw new Error('modern request reached the handler without a caller')
      await pool.ensureUserCatalogs(caller)
      return buildServer(caller, routing.viewFor(caller.userCatalogs))
    },
    {
      legacy: 'reject',
      onerror: (err) => logger.debug({ err: err.message }, 'modern request rejected'),
    },
  )

  const unsubscribe = routing.onListChanged((kind) => {
    if (kind === 'tools') handler.notify.toolsChanged()
    else if (kind === 'prompts') handler.notify.promptsChanged()
    else handler.notify.resourcesChanged()
  })

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
      const listed = routeResource(view, uri)
      if (listed) return listed
      // As for sessions: an unlisted URI goes to the only backend that serves resources.
      const able = routing
        .runtimes()
        .filter(
          (r) =>
            (r.identityScoped ? caller.userCatalogs.get(r.name) : r.catalog)?.capabilities
              .resources,
        )
      if (able.length === 1 && able[0]) return able[0].name
      throw new ResourceNotFoundError(uri)
    }

    server.setRequestHandler(
      'tools/list',
      () => ({ tools: view.tools.map(stripMcpHeaderMarkings) }) as never,
    )
    server.setRequestHandler('prompts/list', () => ({ prompts: view.prompts }) as never)
    server.setRequestHandler('resources/list', () => ({ resources: view.resources }) as never)
    server.setRequestHandler(
      'resources/templates/list',
      () => ({ resourceTemplates: view.resourceTemplates }) as never,
    )

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

  return {
    async handle(request, identity, body) {
      await routing.whenStarted()
      callers.set(request, pool.caller(identity))
      return handler.fetch(request, { parsedBody: body })
    },
    get callers() {
      return pool.size
    },
    async close() {
      unsubscribe()
      interactions.close()
      await handler.close()
      await pool.close()
    },
  }
}

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
  conn.inflight.add(call)
  try {
    return await conn.client.request({ method, params: out } as never, ResultSchema, {
      signal: io ? io.signal : ctx.mcpReq.signal,
      timeout,
      resetTimeoutOnProgress: true,
      ...(clientToken !== undefined || io ? { onprogress: relayProgress } : {}),
    })
  } catch (err) {
    if (isTransportFailure(err)) runtime.reportFailure(err)
    throw err
  } finally {
    conn.inflight.delete(call)
  }
}
