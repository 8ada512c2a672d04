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
import { stripMcpHeaderMarkings } from './tool-headers.js'

export interface ModernEndpointOptions {
  routing: GatewayRouting
  logger: Logger
  serverInfo: { name: string; version: string }
  callTimeout: number
  discoveryTimeout: number
  /** A pooled (caller, backend) connection unused this long is closed. */
  idleTimeout: number
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
    ) =>
      forwardRetrying({
        pool,
        caller,
        runtime: runtimeFor(backend),
        method,
        params,
        ctx,
        timeout: options.callTimeout,
      })
    const forwardOrFail = async (
      backend: string,
      method: string,
      params: Record<string, unknown>,
      ctx: ServerContext,
    ) => {
      try {
        return await forward(backend, method, params, ctx)
      } catch (err) {
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
      await handler.close()
      await pool.close()
    },
  }
}

interface Forward {
  pool: CallerPool
  caller: Caller
  runtime: BackendRuntime
  method: string
  params: Record<string, unknown>
  ctx: ServerContext
  timeout: number
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
}: Forward): Promise<Result> {
  const conn = await pool.connection(caller, runtime)
  const out = { ...params }
  const meta = { ...((out._meta as Record<string, unknown> | undefined) ?? {}) }
  const clientToken = ctx.mcpReq._meta?.progressToken ?? meta.progressToken
  delete meta.progressToken
  for (const key of Object.keys(meta))
    if (key.startsWith('io.modelcontextprotocol/')) delete meta[key]
  if (Object.keys(meta).length > 0) out._meta = meta
  else delete out._meta
  const call: InflightCall = {
    sessionId: '',
    // MCP 2026-07-28 replaces pushed requests with input_required results; until vmcp maps one
    // onto the other, the backend's request fails at once instead of waiting for an answer.
    sendRequest: (r) =>
      Promise.reject(
        new McpError(
          ProtocolErrorCode.InvalidRequest,
          `${r.method} cannot be relayed to a 2026-07-28 client through vmcp`,
        ),
      ),
    sendNotification: async () => undefined,
  }
  conn.inflight.add(call)
  try {
    return await conn.client.request({ method, params: out } as never, ResultSchema, {
      signal: ctx.mcpReq.signal,
      timeout,
      resetTimeoutOnProgress: true,
      ...(clientToken !== undefined
        ? {
            onprogress: (p) =>
              void ctx.mcpReq
                .notify({
                  method: 'notifications/progress',
                  params: { ...p, progressToken: clientToken },
                })
                .catch(() => undefined),
          }
        : {}),
    })
  } catch (err) {
    if (isTransportFailure(err)) runtime.reportFailure(err)
    throw err
  } finally {
    conn.inflight.delete(call)
  }
}
