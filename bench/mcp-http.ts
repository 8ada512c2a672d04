import type { Pool } from 'undici'

/** The protocol revision every bench session negotiates. */
export const PROTOCOL_VERSION = '2025-06-18'

export interface JsonRpcResponse {
  jsonrpc: '2.0'
  id: number | string | null
  result?: Record<string, unknown>
  error?: { code: number; message: string }
}

export interface OpenSessionOptions {
  pool: Pool
  /** Path of the MCP endpoint on the pool's origin, e.g. `/mcp`. */
  path: string
  /** Extra headers on every request (e.g. `authorization`). */
  headers?: Record<string, string>
}

const ACCEPT = 'application/json, text/event-stream'

/**
 * One MCP Streamable HTTP session spoken over raw HTTP (no SDK on the client side, so the load
 * generator stays cheap): JSON-RPC POSTs, SSE or JSON responses, `mcp-session-id` echoed back.
 */
export class McpHttpSession {
  #nextId = 1
  readonly #pool: Pool
  readonly #path: string
  readonly #headers: Record<string, string>

  private constructor(
    pool: Pool,
    path: string,
    headers: Record<string, string>,
    readonly sessionId: string,
  ) {
    this.#pool = pool
    this.#path = path
    this.#headers = headers
  }

  /** initialize → notifications/initialized; the session is then ready for calls. */
  static async open(options: OpenSessionOptions): Promise<McpHttpSession> {
    const base = {
      'content-type': 'application/json',
      accept: ACCEPT,
      ...options.headers,
    }
    const init = await post(options.pool, options.path, base, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'vmcp-bench', version: '1.0.0' },
      },
    })
    const sessionId = init.headers['mcp-session-id']
    if (typeof sessionId !== 'string' || !sessionId) {
      const why = `HTTP ${init.status} ${init.text.slice(0, 200)}`
      throw new Error(`initialize: no mcp-session-id (${why})`)
    }
    const reply = parseRpc(init.contentType, init.text, 0)
    if (reply.error) throw new Error(`initialize failed: ${reply.error.message}`)
    const headers = {
      ...base,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': PROTOCOL_VERSION,
    }
    const session = new McpHttpSession(options.pool, options.path, headers, sessionId)
    const ack = await post(options.pool, options.path, session.#headers, {
      jsonrpc: '2.0',
      method: 'notifications/initialized',
    })
    if (ack.status !== 202 && ack.status !== 200) {
      throw new Error(`notifications/initialized: HTTP ${ack.status} ${ack.text.slice(0, 200)}`)
    }
    return session
  }

  /** One JSON-RPC request; resolves with the result, rejects on HTTP or JSON-RPC errors. */
  async request(
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    const id = this.#nextId++
    const message = { jsonrpc: '2.0', id, method, params }
    const res = await post(this.#pool, this.#path, this.#headers, message)
    if (res.status !== 200) {
      throw new Error(`${method}: HTTP ${res.status} ${res.text.slice(0, 200)}`)
    }
    const reply = parseRpc(res.contentType, res.text, id)
    if (reply.error) {
      throw new Error(`${method}: JSON-RPC ${reply.error.code} ${reply.error.message}`)
    }
    return reply.result ?? {}
  }

  /** tools/call that also fails on `isError` results (a tool error is not a successful call). */
  async callTool(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const result = await this.request('tools/call', { name, arguments: args })
    if (result.isError) {
      throw new Error(`tools/call ${name}: ${JSON.stringify(result.content).slice(0, 200)}`)
    }
    return result
  }

  /** DELETE: ends the session on the server (and, through vmcp, its backend sessions). */
  async close(): Promise<void> {
    const { body } = await this.#pool.request({
      path: this.#path,
      method: 'DELETE',
      headers: this.#headers,
    })
    await body.dump()
  }
}

/** The 2026-07-28 revision the stateless bench callers speak. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28'

/**
 * A stateless MCP 2026-07-28 caller over raw HTTP: no session, each request carries the
 * `_meta` envelope and the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers.
 */
export class McpModernCaller {
  #nextId = 1
  readonly #pool: Pool
  readonly #path: string
  readonly #headers: Record<string, string>

  constructor(options: OpenSessionOptions) {
    this.#pool = options.pool
    this.#path = options.path
    this.#headers = {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': MODERN_PROTOCOL_VERSION,
      ...options.headers,
    }
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#nextId++
    const _meta = {
      'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION,
      'io.modelcontextprotocol/clientInfo': { name: 'vmcp-bench', version: '1.0.0' },
      'io.modelcontextprotocol/clientCapabilities': {},
    }
    const message = {
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name, arguments: args, _meta },
    }
    const headers = { ...this.#headers, 'mcp-method': 'tools/call', 'mcp-name': name }
    const res = await post(this.#pool, this.#path, headers, message)
    if (res.status !== 200)
      throw new Error(`tools/call: HTTP ${res.status} ${res.text.slice(0, 200)}`)
    const reply = parseRpc(res.contentType, res.text, id)
    if (reply.error)
      throw new Error(`tools/call: JSON-RPC ${reply.error.code} ${reply.error.message}`)
    if (reply.result?.isError) {
      throw new Error(`tools/call ${name}: ${JSON.stringify(reply.result.content).slice(0, 200)}`)
    }
    return reply.result ?? {}
  }

  /** Nothing to end: the modern era has no session. */
  async close(): Promise<void> {}
}

interface RawReply {
  status: number
  headers: Record<string, string | string[] | undefined>
  contentType: string
  text: string
}

async function post(
  pool: Pool,
  path: string,
  headers: Record<string, string>,
  message: unknown,
): Promise<RawReply> {
  const res = await pool.request({ path, method: 'POST', headers, body: JSON.stringify(message) })
  const text = await res.body.text()
  const ct = res.headers['content-type']
  return {
    status: res.statusCode,
    headers: res.headers,
    contentType: (Array.isArray(ct) ? ct[0] : ct) ?? '',
    text,
  }
}

/** Finds the response to `id` in a JSON body or in the `data:` lines of an SSE body. */
export function parseRpc(contentType: string, text: string, id: number): JsonRpcResponse {
  if (!contentType.startsWith('text/event-stream')) return JSON.parse(text) as JsonRpcResponse
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue
    const message = JSON.parse(line.slice(5)) as JsonRpcResponse
    // Notifications (progress, logs) may precede the response on the same stream.
    if (message.id === id) return message
  }
  throw new Error(`no JSON-RPC response with id ${id} in SSE body: ${text.slice(0, 200)}`)
}
