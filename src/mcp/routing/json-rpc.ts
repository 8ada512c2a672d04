import type { ClientRequestId } from './call-table.js'

/** Plain JSON-RPC 2.0 messages as they travel: the routing core never validates their payloads. */
export interface RpcRequest {
  jsonrpc: '2.0'
  id: ClientRequestId
  method: string
  params?: Record<string, unknown>
}
export interface RpcNotification {
  jsonrpc: '2.0'
  method: string
  params?: Record<string, unknown>
}
export interface RpcResponse {
  jsonrpc: '2.0'
  id: ClientRequestId | null
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: unknown }
}
export type RpcMessage = RpcRequest | RpcNotification | RpcResponse

/**
 * Answer for a call cancelled while its client may still be listening (LSP's RequestCancelled;
 * MCP cancellation says the client ignores answers after cancelling, so this is only ever seen
 * by a client that reused the id).
 */
export const REQUEST_CANCELLED = -32800

export function isRequest(m: unknown): m is RpcRequest {
  if (typeof m !== 'object' || m === null) return false
  const r = m as { method?: unknown; id?: unknown }
  return typeof r.method === 'string' && (typeof r.id === 'string' || typeof r.id === 'number')
}

export function isNotification(m: unknown): m is RpcNotification {
  if (typeof m !== 'object' || m === null) return false
  const r = m as { method?: unknown }
  return typeof r.method === 'string' && !('id' in r)
}

export function isResponse(m: unknown): m is RpcResponse & { id: ClientRequestId } {
  if (typeof m !== 'object' || m === null) return false
  const r = m as { method?: unknown; result?: unknown; error?: unknown }
  return r.method === undefined && ('result' in r || 'error' in r)
}

/** JSON-RPC 2.0 §5.1: a body that is JSON but no JSON-RPC message is an Invalid Request. */
export const INVALID_REQUEST = { code: -32600, message: 'Invalid Request: not a JSON-RPC 2.0 message' } as const

/** JSON-RPC 2.0 §4 and §6: one message (request, notification, response), or a non-empty batch. */
export function isRpcPayload(body: unknown): boolean {
  if (Array.isArray(body)) return body.length > 0 && body.every(isRpcMessage)
  return isRpcMessage(body)
}

function isRpcMessage(m: unknown): boolean {
  if ((m as { jsonrpc?: unknown } | null)?.jsonrpc !== '2.0') return false
  return isRequest(m) || isNotification(m) || isResponse(m)
}

/** Streamable HTTP §Sending Messages to the Server: a POST body is `application/json`. */
export function isJsonContentType(value: string | null): boolean {
  if (value === 'application/json') return true
  if (!value) return false
  return value.split(';', 1)[0]?.trim().toLowerCase() === 'application/json'
}
