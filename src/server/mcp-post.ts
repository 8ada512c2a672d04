import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AuthRequest, AuthResult, IncomingAuthenticator } from '../auth/incoming/index.js'
import type { Logger } from '../log/index.js'
import {
  claimsEnvelope,
  INVALID_REQUEST,
  isJsonContentType,
  isRpcPayload,
  type DirectReply,
  type Gateway,
} from '../mcp/index.js'
import { logAccess, type RpcNote } from './access.js'
import { readIncomingLimited } from './body.js'
import {
  bodyTooLarge,
  NOT_JSON,
  rpcErrorBody,
  UNSUPPORTED_MEDIA_TYPE,
  type McpGuard,
} from './mcp-guard.js'
import { NodeDirectReply } from './reply.js'

type NodeListener = (req: IncomingMessage, res: ServerResponse) => void

export interface McpPostOptions {
  path: string
  guard: McpGuard
  authenticator: IncomingAuthenticator
  gateway: Gateway
  logger: Logger
  maxBodyBytes: number
  /** The 2026-07-28 path is served: a body claiming a revision goes to the app to be classified. */
  modern: boolean
  /** The Hono app's listener: everything this path does not take. */
  fallback: NodeListener
}

/** What the fast path established for a request it handed on to the app. */
export interface PreparedPost {
  auth: Extract<AuthResult, { ok: true }>
  body: unknown
}

const PREPARED = new WeakMap<IncomingMessage, PreparedPost>()

/** The identity and parsed body of a request the fast path handed on, taken once. */
export function takePrepared(incoming: IncomingMessage): PreparedPost | undefined {
  const prepared = PREPARED.get(incoming)
  if (prepared) PREPARED.delete(incoming)
  return prepared
}

/**
 * POST /mcp on an existing session, served on the Node request and response themselves: no web
 * Request, Headers or AbortSignal, no Hono context. It applies what the Hono route does, in the
 * same order and with the same answers: Origin and Host (403), authentication (401/403 with
 * WWW-Authenticate, 503), Content-Type (415), the body limit (413), JSON and JSON-RPC (400), then
 * the gateway's session checks (404, 406, 400). A message only the full path serves (batch, initialize, a 2026-07-28
 * claim) goes to the app with its identity and body, so nothing is checked or read twice.
 * Returns false for any other request, which the caller gives to the app.
 */
export function createMcpPostListener(options: McpPostOptions) {
  const { path, guard, authenticator, gateway, logger, maxBodyBytes, fallback } = options
  const pathWithQuery = `${path}?`

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const logged = logger.isLevelEnabled('info') ? accessLine(req, res, logger, path) : undefined
    const headers = new NodeHeaders(req)
    const origin = headers.get('origin')
    const refused = guard.refuse(origin, headers.get('host'))
    if (refused) return writeJson(req, res, 403, rpcErrorBody(-32000, refused), {})
    const cors = guard.cors(origin)
    const auth = await authenticator.authenticate(new NodeAuthRequest(headers, res))
    if (!auth.ok) return writeResponse(req, res, auth.response, cors)
    if (!isJsonContentType(headers.get('content-type'))) {
      return writeJson(req, res, 415, rpcErrorBody(-32000, UNSUPPORTED_MEDIA_TYPE), cors)
    }
    const reading = readIncomingLimited(req, maxBodyBytes)
    const read = reading instanceof Promise ? await reading : reading
    if (!read.ok) return writeJson(req, res, 413, rpcErrorBody(-32000, bodyTooLarge(maxBodyBytes)), cors)
    let body: unknown
    try {
      body = JSON.parse(read.text)
    } catch {
      return writeJson(req, res, 400, rpcErrorBody(-32700, NOT_JSON), cors)
    }
    // JSON-RPC 2.0 §5.1: JSON that is no JSON-RPC message.
    if (!isRpcPayload(body)) {
      return writeJson(req, res, 400, rpcErrorBody(INVALID_REQUEST.code, INVALID_REQUEST.message), cors)
    }
    if (options.modern && claimsEnvelope(body)) return handOn(req, res, { auth, body }, logged)
    if (logged) logged.note.body = body
    const direct = new NodeDirectReply(res, cors, logged?.note)
    const posted = gateway.postMessage(headers, auth.identity, body, direct)
    const answer = posted instanceof Promise ? await posted : posted
    if (answer === false) return handOn(req, res, { auth, body }, logged)
    if (answer) return writeResponse(req, res, answer, cors)
  }

  const run = (req: IncomingMessage, res: ServerResponse): void => {
    serve(req, res).catch((err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      logger.error({ err: { message: e.message, stack: e.stack } }, 'unhandled error')
      if (res.headersSent) res.destroy()
      else writeJson(req, res, 500, JSON.stringify({ error: 'server_error', error_description: 'internal error' }), {})
    })
  }

  /** To the app, with what was established: it neither authenticates nor reads again. */
  const handOn = (req: IncomingMessage, res: ServerResponse, prepared: PreparedPost, logged?: { cancel(): void }) => {
    logged?.cancel()
    PREPARED.set(req, prepared)
    fallback(req, res)
  }

  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? ''
    if (req.method !== 'POST' || req.headers['mcp-session-id'] === undefined) return false
    if (url !== path && !url.startsWith(pathWithQuery)) return false
    // The body comes in the same read as the headers, but Node parses it only after this
    // 'request' event and the microtasks it queues: the first moment it is all there is the
    // event loop's check phase. Served then, a small body is read at once (no listeners, no
    // flowing mode); one that has not all arrived is read as it comes.
    if (req.complete) run(req, res)
    else setImmediate(run, req, res)
    return true
  }
}

// Fields Node keeps only the first of, where a web Headers joins every instance: a repeated
// Authorization must read as the malformed "a, b" it is (RFC 9110 §5.3), not as its first copy.
const FIRST_ONLY_IN_NODE: ReadonlySet<string> = new Set(['authorization', 'host', 'content-type'])

/** A Node request's headers read the way `Headers.get` reads them. */
class NodeHeaders implements Pick<Headers, 'get'> {
  readonly #req: IncomingMessage

  constructor(req: IncomingMessage) {
    this.#req = req
  }

  get(name: string): string | null {
    const value = this.#req.headers[name]
    if (value === undefined) return null
    if (typeof value !== 'string') return value.join(', ')
    return FIRST_ONLY_IN_NODE.has(name) ? joinedRaw(this.#req.rawHeaders, name, value) : value
  }
}

function joinedRaw(raw: string[], name: string, first: string): string {
  let all: string[] | undefined
  let seen = 0
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i] as string
    if (key.length !== name.length || key.toLowerCase() !== name) continue
    seen++
    if (seen === 2) all = [first]
    if (all && seen >= 2) all.push(raw[i + 1] as string)
  }
  return all ? all.join(', ') : first
}

/** The request for authentication; its signal (client gone) is made only if something waits on it. */
class NodeAuthRequest implements AuthRequest {
  readonly headers: Pick<Headers, 'get'>
  readonly #res: ServerResponse
  #signal: AbortSignal | undefined

  constructor(headers: Pick<Headers, 'get'>, res: ServerResponse) {
    this.headers = headers
    this.#res = res
  }

  get signal(): AbortSignal {
    if (!this.#signal) {
      const controller = new AbortController()
      const res = this.#res
      this.#signal = controller.signal
      if (res.destroyed) controller.abort()
      else res.once('close', () => res.writableFinished || controller.abort())
    }
    return this.#signal
  }
}

/** The access line of this request, written when the reply is done (cancelled when handed on). */
function accessLine(req: IncomingMessage, res: ServerResponse, logger: Logger, path: string) {
  const started = performance.now()
  const note: RpcNote = { body: undefined, channel: undefined }
  let cancelled = false
  res.once('close', () => {
    if (cancelled) return
    const session = req.headers['mcp-session-id']
    const request = {
      method: 'POST',
      path,
      session: typeof session === 'string' ? session : undefined,
      note: note.body === undefined ? undefined : note,
    }
    logAccess(logger, request, res.statusCode, started)
  })
  return { note, cancel: () => (cancelled = true) }
}

/**
 * An answer written before the body was read to the end: the connection closes after it, so
 * an unread (possibly huge) body is not read just to be thrown away.
 */
function closeIfUnread(req: IncomingMessage, headers: Record<string, string | number>) {
  if (!req.complete) headers.connection = 'close'
  return headers
}

function writeJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string,
  extra: Record<string, string>,
): void {
  const headers = closeIfUnread(req, {
    ...extra,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  })
  res.writeHead(status, headers)
  res.end(body)
}

/** An error Response (authentication, gateway) written to the Node response. */
async function writeResponse(
  req: IncomingMessage,
  res: ServerResponse,
  response: Response,
  extra: Record<string, string>,
): Promise<void> {
  const body = Buffer.from(await response.arrayBuffer())
  const headers: Record<string, string | number> = {}
  response.headers.forEach((value, key) => (headers[key] = value))
  Object.assign(headers, extra, { 'content-length': body.length })
  res.writeHead(response.status, closeIfUnread(req, headers))
  res.end(body)
}
