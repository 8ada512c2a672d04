import type { IncomingMessage, ServerResponse } from 'node:http'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import { Hono, type Context } from 'hono'
import type { IncomingAuthenticator } from '../auth/incoming/index.js'
import type { ServerConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { Metrics } from '../metrics/index.js'
import {
  classifyEra,
  INVALID_REQUEST,
  isJsonContentType,
  isRpcPayload,
  type Gateway,
  type ModernEndpoint,
} from '../mcp/index.js'
import { isLoopbackHost } from '../net/index.js'
import { logAccess, type RpcNote } from './access.js'
import { readBodyLimited, readIncomingLimited } from './body.js'
import { bodyTooLarge, createMcpGuard, NOT_JSON, rpcErrorBody, UNSUPPORTED_MEDIA_TYPE } from './mcp-guard.js'
import { takePrepared } from './mcp-post.js'
import { NodeDirectReply } from './reply.js'

/** What @hono/node-server passes as env: the Node request and response behind `c.req.raw`. */
interface NodeEnv {
  incoming?: IncomingMessage
  outgoing?: ServerResponse
}

export interface CreateAppOptions {
  name: string
  version: string
  server: ServerConfig
  gateway: Gateway
  /** The MCP 2026-07-28 path; without it every request takes the 2025 session path. */
  modern?: ModernEndpoint
  authenticator: IncomingAuthenticator
  logger: Logger
  /** Public origin of this server (publicUrl, or the listen address). */
  baseUrl: string
  /** Mode B: the embedded authorization server's routes (metadata, JWKS, /oauth/*). */
  authServer?: Hono
  /** State of each configured registry, shown in /status (undefined: none configured). */
  registries?: () => unknown[] | undefined
  /** Served at /metrics (Prometheus text), to the same callers as /status. */
  metrics?: Metrics
}

export const MCP_PATH = '/mcp'
const DOCS_URL = 'https://github.com/vmcp/vmcp#readme'
const PRM_PATH = '/.well-known/oauth-protected-resource'
const MCP_ALLOWED_HEADERS =
  'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name'

const json = (c: Context, status: number, body: unknown, headers: Record<string, string> = {}) =>
  c.body(JSON.stringify(body), status as 200, { 'content-type': 'application/json', ...headers })

const rpcError = (status: number, code: number, message: string) =>
  new Response(rpcErrorBody(code, message), { status, headers: { 'content-type': 'application/json' } })

/**
 * The HTTP surface: `/mcp` (Streamable HTTP), health/readiness/status, and RFC 9728 metadata.
 * Every error is JSON in the shape its protocol expects; nothing here throws to the client.
 */
export function createApp(options: CreateAppOptions): Hono {
  const { server, gateway, authenticator, logger } = options
  const app = new Hono()
  // The /mcp route notes the message it served, for the access line.
  const notes = new WeakMap<Request, RpcNote>()
  const guard = createMcpGuard(server, options.baseUrl)

  app.use('*', async (c, next) => {
    // Nothing to measure or build when the access line would be dropped anyway.
    if (!logger.isLevelEnabled('info')) return next()
    const started = performance.now()
    const line = (status: number) =>
      logAccess(
        logger,
        {
          method: c.req.method,
          path: c.req.path,
          session: c.req.header('mcp-session-id'),
          note: notes.get(c.req.raw),
        },
        status,
        started,
      )
    await next()
    // A reply written straight to the Node response is logged when it is done.
    const outgoing = (c.env as NodeEnv | undefined)?.outgoing
    if (c.res === RESPONSE_ALREADY_SENT && outgoing) {
      if (outgoing.writableFinished) line(outgoing.statusCode)
      else outgoing.once('close', () => line(outgoing.statusCode))
    } else line(c.res.status)
  })

  app.onError((err, c) => {
    logger.error({ err: { message: err.message, stack: err.stack } }, 'unhandled error')
    return json(c, 500, { error: 'server_error', error_description: 'internal error' })
  })
  app.notFound((c) => json(c, 404, { error: 'not_found' }))

  // Someone who opens the server's address in a browser (or curls it) learns where to go.
  app.get('/', (c) =>
    json(c, 200, {
      name: options.name,
      version: options.version,
      mcp: `${options.baseUrl}${MCP_PATH}`,
      status: `${options.baseUrl}/status`,
      docs: DOCS_URL,
    }),
  )
  app.get('/health', (c) => json(c, 200, { status: 'ok' }))
  app.get('/readyz', (c) =>
    gateway.ready ? json(c, 200, { status: 'ready' }) : json(c, 503, { status: 'not_ready' }),
  )
  // Backend names, counts, error text and metrics are for operators: in the OIDC modes only a
  // caller with a token /mcp would accept, or a process on this host, may read them.
  const operatorOnly = async (c: Context): Promise<Response | undefined> => {
    if (authenticator.type !== 'oidc' || isLocalRequest(c)) return undefined
    const auth = await authenticator.authenticate(c.req.raw)
    return auth.ok ? undefined : auth.response
  }
  const metrics = options.metrics
  if (metrics) {
    app.get('/metrics', async (c) => {
      const refused = await operatorOnly(c)
      if (refused) return refused
      return c.body(await metrics.render(), 200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' })
    })
  }
  app.get('/status', async (c) => {
    const refused = await operatorOnly(c)
    if (refused) return refused
    const s = gateway.status()
    const registries = options.registries?.()
    return json(c, 200, {
      name: options.name,
      version: options.version,
      ready: s.ready,
      sessions: s.sessions,
      healthy: s.backends.filter((b) => b.health === 'healthy').length,
      backends: s.backends,
      ...(registries ? { registries } : {}),
      // ?tools=1: every exposed tool name with its backend (what `vmcp tools` prints).
      ...(c.req.query('tools') === '1' ? { tools: gateway.exposedTools() } : {}),
    })
  })

  // RFC 9728 §3: metadata at the well-known URI, with the resource path appended (…/mcp).
  const prm = authenticator.protectedResourceMetadata()
  const prmCors = {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, OPTIONS',
    'access-control-allow-headers': 'Content-Type, Authorization, Mcp-Protocol-Version',
    'access-control-max-age': '86400',
  }
  for (const path of [PRM_PATH, `${PRM_PATH}${MCP_PATH}`]) {
    if (!prm) break
    app.options(path, (c) => c.body(null, 204, prmCors))
    app.get(path, (c) => json(c, 200, prm, { ...prmCors, 'cache-control': 'public, max-age=3600' }))
  }
  // Mode B only: in Mode A none of these routes exist, so its answers stay exactly as they were.
  if (options.authServer) app.route('/', options.authServer)
  // Discovery probes for anything else get JSON, so clients parse a clean 404.
  app.all('/.well-known/*', (c) => json(c, 404, { error: 'not_found' }))

  app.all(MCP_PATH, async (c) => {
    const req = c.req.raw
    const origin = req.headers.get('origin')
    const refused = guard.refuse(origin, req.headers.get('host'))
    if (refused) return rpcError(403, -32000, refused)
    const cors = guard.cors(origin)
    if (req.method === 'OPTIONS') {
      return c.body(null, 204, {
        ...cors,
        'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
        'access-control-allow-headers': allowedRequestHeaders(req.headers.get('access-control-request-headers')),
        'access-control-max-age': '86400',
      })
    }
    if (!['GET', 'POST', 'DELETE'].includes(req.method)) {
      return withHeaders(rpcError(405, -32000, 'Method not allowed'), { allow: 'GET, POST, DELETE', ...cors })
    }
    const incoming = (c.env as NodeEnv | undefined)?.incoming
    // A session POST the Node fast path authenticated and read, then handed on (see mcp-post.ts).
    const prepared = incoming && takePrepared(incoming)
    const auth = prepared ? prepared.auth : await authenticator.authenticate(req)
    if (!auth.ok) return withHeaders(auth.response, cors)

    let body: unknown = prepared?.body
    if (req.method === 'POST' && !prepared) {
      if (!isJsonContentType(req.headers.get('content-type'))) {
        return withHeaders(rpcError(415, -32000, UNSUPPORTED_MEDIA_TYPE), cors)
      }
      const read = incoming
        ? await readIncomingLimited(incoming, server.maxBodyBytes)
        : await readBodyLimited(req, server.maxBodyBytes)
      if (!read.ok) {
        return withHeaders(rpcError(413, -32000, bodyTooLarge(server.maxBodyBytes)), cors)
      }
      try {
        body = JSON.parse(read.text)
      } catch {
        return withHeaders(rpcError(400, -32700, NOT_JSON), cors)
      }
      if (!isRpcPayload(body)) return withHeaders(rpcError(400, INVALID_REQUEST.code, INVALID_REQUEST.message), cors)
    }
    const outgoing = (c.env as NodeEnv | undefined)?.outgoing
    // Noted only when the access line will be written: nothing to keep otherwise.
    const note: RpcNote | undefined = body !== undefined && logger.isLevelEnabled('info') ? { body, channel: undefined } : undefined
    if (note) notes.set(req, note)
    const direct = outgoing ? new NodeDirectReply(outgoing, cors, note) : undefined
    const modern = options.modern
    if (modern && (await classifyEra(req, body)) === 'modern') {
      const res = await modern.handle(req, auth.identity, body, direct)
      return res ? withHeaders(res, cors) : RESPONSE_ALREADY_SENT
    }
    const res = await gateway.handle(req, auth.identity, body, direct)
    if (!res) return RESPONSE_ALREADY_SENT
    return withHeaders(res, cors)
  })

  return app
}

/**
 * MCP 2026-07-28 §Streamable HTTP (SEP-2243): requests carry `Mcp-Method`, `Mcp-Name` and one
 * `Mcp-Param-{Name}` per marked argument. The param names vary per tool, so the preflight
 * allows exactly the `Mcp-Param-*` names the browser asks for, besides the fixed list.
 */
function allowedRequestHeaders(requested: string | null): string {
  const params = (requested ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => /^mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(h))
  return params.length > 0 ? `${MCP_ALLOWED_HEADERS}, ${params.join(', ')}` : MCP_ALLOWED_HEADERS
}

// Headers a reverse proxy adds for the client it relays (RFC 7239 and the de facto ones).
const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'] as const

/**
 * A request from this host: the TCP peer (@hono/node-server's socket, never a header) is loopback
 * and no proxy header says it relays someone else's request (a reverse proxy on the same host
 * connects from loopback for every client).
 */
function isLocalRequest(c: Context): boolean {
  const peer = (c.env as NodeEnv | undefined)?.incoming?.socket.remoteAddress
  if (!peer || PROXY_HEADERS.some((h) => c.req.header(h) !== undefined)) return false
  // A dual-stack listener reports IPv4 peers as IPv4-mapped (RFC 4291 §2.5.5.2).
  return isLoopbackHost(peer.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, ''))
}

function withHeaders(res: Response, headers: Record<string, string>): Response {
  // Responses built here and by the SDK transport have mutable headers: no rebuild.
  for (const k in headers) res.headers.set(k, headers[k] as string)
  return res
}
