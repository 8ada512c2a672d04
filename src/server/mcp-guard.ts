import type { ServerConfig } from '../config/index.js'
import { isLoopbackHost } from '../net/index.js'

export const MCP_EXPOSED_HEADERS = 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate'

export const UNSUPPORTED_MEDIA_TYPE = 'Unsupported Media Type: Content-Type must be application/json'
export const NOT_JSON = 'Parse error: body is not valid JSON'
export const bodyTooLarge = (max: number) => `Request body exceeds ${max} bytes`

/** A JSON-RPC error with a null id: /mcp's answer to requests refused before any message is read. */
export const rpcErrorBody = (code: number, message: string) =>
  JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null })

/**
 * The DNS-rebinding checks of `/mcp` and its CORS answer, shared by the Hono route and the
 * Node fast path for session POSTs (src/server/mcp-post.ts), so both refuse the same requests.
 */
export interface McpGuard {
  /** Why the request is refused (403), or undefined when its Origin and Host are ours. */
  refuse(origin: string | null, host: string | null): string | undefined
  /** The CORS headers of an answer to a request from `origin` (none without an Origin). */
  cors(origin: string | null): Record<string, string>
}

// Shared by every request without an Origin: read into reply headers, never written to.
const NO_CORS: Record<string, string> = Object.freeze({}) as Record<string, string>

export function createMcpGuard(server: ServerConfig, baseUrl: string): McpGuard {
  const allowedOrigins = decidedOnce(buildAllowedOrigins(server, baseUrl))
  const allowedHosts = decidedOnce(buildAllowedHosts(server, baseUrl))
  const bindIsLoopback = isLoopbackHost(server.host)
  return {
    refuse(origin, host) {
      // MCP transports §Security: validate Origin against DNS rebinding.
      if (origin !== null && !allowedOrigins(origin)) return 'Forbidden: Origin not allowed'
      if (bindIsLoopback && !allowedHosts(host ?? '')) return 'Forbidden: Host not allowed'
      return undefined
    },
    cors(origin): Record<string, string> {
      if (!origin) return NO_CORS
      return {
        'access-control-allow-origin': origin,
        'access-control-expose-headers': MCP_EXPOSED_HEADERS,
        vary: 'Origin',
      }
    },
  }
}

// Distinct Host and Origin values are few (the names this server is reached by).
const DECISION_CACHE_MAX = 256

/** Memoizes a check per distinct header value, bounded so junk values cannot grow it. */
function decidedOnce(check: (value: string) => boolean): (value: string) => boolean {
  const decided = new Map<string, boolean>()
  return (value) => {
    let ok = decided.get(value)
    if (ok === undefined) {
      ok = check(value)
      if (decided.size >= DECISION_CACHE_MAX) decided.clear()
      decided.set(value, ok)
    }
    return ok
  }
}

function buildAllowedOrigins(server: ServerConfig, baseUrl: string): (origin: string) => boolean {
  const exact = new Set([...server.allowedOrigins, new URL(baseUrl).origin].map((o) => o.toLowerCase()))
  return (origin) => {
    if (exact.has(origin.toLowerCase())) return true
    try {
      const u = new URL(origin)
      // Local tools (MCP Inspector, IDEs) run on loopback origins; a rebinding attacker cannot.
      return (u.protocol === 'http:' || u.protocol === 'https:') && isLoopbackHost(u.hostname)
    } catch {
      return false
    }
  }
}

function buildAllowedHosts(server: ServerConfig, baseUrl: string): (host: string) => boolean {
  const names = new Set(
    [baseUrl, ...server.allowedOrigins].flatMap((o) => {
      try {
        return [new URL(o).hostname.toLowerCase()]
      } catch {
        return []
      }
    }),
  )
  return (host) => {
    if (!host) return false
    let hostname: string
    try {
      hostname = new URL(`http://${host}`).hostname.toLowerCase()
    } catch {
      return false
    }
    return isLoopbackHost(hostname) || names.has(hostname)
  }
}
