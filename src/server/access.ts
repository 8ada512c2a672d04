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
