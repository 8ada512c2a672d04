import { fingerprint, type Logger } from '../log/index.js'
import type { CallOutcome } from '../metrics/index.js'
import type { NodeReplyChannel } from './reply.js'

/** What one /mcp POST carried, noted for its access line (only while info lines are logged). */
export interface RpcNote {
  body: unknown
  channel: NodeReplyChannel | undefined
}

/**
 * The JSON-RPC part of an access line: the method, the tool (or prompt) asked for, the backend
 * that served it and how it ended. Names only: never arguments, never results.
 */
export function rpcFields(note: RpcNote | undefined): {
  rpc?: string
  tool?: string
  prompt?: string
  backend?: string
  outcome?: CallOutcome
} {
  if (!note) return {}
  const { body, channel } = note
  if (Array.isArray(body)) return { rpc: 'batch' }
  const message = body as { method?: unknown; params?: { name?: unknown } } | null
  if (typeof message?.method !== 'string') return {}
  const name = typeof message.params?.name === 'string' ? message.params.name : undefined
  const backend = channel?.stat?.backend
  return {
    rpc: message.method,
    ...(name !== undefined && message.method === 'tools/call' ? { tool: name } : {}),
    ...(name !== undefined && message.method === 'prompts/get' ? { prompt: name } : {}),
    ...(backend ? { backend } : {}),
    ...(channel?.outcome ? { outcome: channel.outcome } : {}),
  }
}

/**
 * One access line, for the Hono middleware and /mcp's Node fast path alike: the HTTP request, its
 * status and duration, the session and the JSON-RPC fields of its message.
 */
export function logAccess(
  logger: Logger,
  request: { method: string; path: string; session: string | undefined; note: RpcNote | undefined },
  status: number,
  started: number,
): void {
  logger.info(
    {
      method: request.method,
      path: request.path,
      status,
      ms: Math.round((performance.now() - started) * 100) / 100,
      // Whoever holds a session id can use the session: logs get its fingerprint only.
      session: request.session === undefined ? undefined : fingerprint(request.session),
      ...rpcFields(request.note),
    },
    'request',
  )
}
