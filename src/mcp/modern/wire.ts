import { isJsonContentType, SERVER_INFO_META_KEY } from '@modelcontextprotocol/server'
import { isRequest, type RpcMessage, type RpcRequest } from '../routing/json-rpc.js'
import { inboundOutcome, MODERN_PROTOCOL_VERSIONS } from './era.js'

/** The body field each method's `Mcp-Name` header mirrors (MCP 2026-07-28 §Standard Request Headers). */
export const MCP_NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
}

/**
 * The request itself when vmcp may answer it without the v2 SDK's entry: a single JSON-RPC
 * request that the entry's validation ladder would pass as it stands. Its revision is one vmcp
 * serves, the envelope is well formed (the SDK's own classifier decides), and the standard
 * headers are present and equal to the body (MCP 2026-07-28 §Standard Request Headers; the
 * `Mcp-Name` header compared verbatim, so a Base64-encoded one takes the SDK path).
 * Anything else, every rejection included, is left to the entry, which answers it as the SDK
 * does (`-32020` for a header that disagrees).
 */
export function passesLadder(request: Request, body: unknown): RpcRequest | undefined {
  if (!isRequest(body) || request.method !== 'POST') return undefined
  const headers = request.headers
  if (!isJsonContentType(headers.get('content-type'))) return undefined
  const version = headers.get('mcp-protocol-version')
  if (version === null || !MODERN_PROTOCOL_VERSIONS.includes(version)) return undefined
  if (headers.get('mcp-method') !== body.method) return undefined
  const nameField = MCP_NAME_SOURCE[body.method]
  const nameHeader = headers.get('mcp-name')
  if (nameField !== undefined && nameHeader !== body.params?.[nameField]) return undefined
  const outcome = inboundOutcome(request, body)
  if (outcome.kind !== 'modern' || outcome.messageKind !== 'request') return undefined
  return outcome.classification.revision === version ? body : undefined
}

// MCP 2026-07-28: results of these methods are cacheable and carry `ttlMs` and `cacheScope`.
const CACHEABLE = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'server/discover',
])
// Methods whose result may be other than `complete` (input_required), passed through as is.
const EXTENDED_RESULT_TYPE = new Set(['tools/call', 'prompts/get', 'resources/read'])
// 2025 "Resource not found" became Invalid params in 2026-07-28.
const RESOURCE_NOT_FOUND_2025 = -32002
const INVALID_PARAMS = -32602
const INTERNAL_ERROR = -32603

/**
 * A result or error as a 2026-07-28 client expects it, from a 2025-shaped answer: the same
 * encoding the v2 SDK applies to its handlers' results (`resultType`, default `ttlMs: 0` and
 * `cacheScope: 'private'` on cacheable results, the server's identity in `_meta`, error codes
 * the revision renamed). Fields an answer already carries are kept.
 */
export function encodeModernAnswer(
  method: string,
  message: RpcMessage,
  serverInfo: { name: string; version: string },
): RpcMessage {
  if (!('id' in message)) return message
  const error = 'error' in message ? message.error : undefined
  if (error) {
    if (error.code !== RESOURCE_NOT_FOUND_2025) return message
    return { ...message, error: { ...error, code: INVALID_PARAMS } }
  }
  const raw = 'result' in message ? message.result : undefined
  if (typeof raw !== 'object' || raw === null) return message
  const result: Record<string, unknown> = { ...raw }
  if (result.resultType === undefined) result.resultType = 'complete'
  else if (result.resultType !== 'complete' && !EXTENDED_RESULT_TYPE.has(method)) {
    return {
      jsonrpc: '2.0',
      id: message.id,
      error: {
        code: INTERNAL_ERROR,
        message: `Backend answered ${method} with resultType ${String(result.resultType)}`,
      },
    }
  }
  if (result.resultType === 'complete' && CACHEABLE.has(method)) {
    const ttl = result.ttlMs
    if (!(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl >= 0)) result.ttlMs = 0
    if (result.cacheScope !== 'public' && result.cacheScope !== 'private')
      result.cacheScope = 'private'
  }
  const meta = result._meta
  if (meta === undefined) result._meta = { [SERVER_INFO_META_KEY]: serverInfo }
  else if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) {
    const m = meta as Record<string, unknown>
    if (m[SERVER_INFO_META_KEY] === undefined)
      result._meta = { ...m, [SERVER_INFO_META_KEY]: serverInfo }
  }
  return { jsonrpc: '2.0', id: message.id, result }
}

/** Request `_meta` as a 2025 backend gets it: the 2026-07-28 envelope stays at vmcp. */
export function withoutEnvelope(params: Record<string, unknown>): Record<string, unknown> {
  const meta = params._meta as Record<string, unknown> | undefined
  if (!meta) return params
  const kept: Record<string, unknown> = {}
  let any = false
  for (const key of Object.keys(meta)) {
    if (key.startsWith('io.modelcontextprotocol/')) continue
    kept[key] = meta[key]
    any = true
  }
  const out = { ...params }
  if (any) out._meta = kept
  else delete out._meta
  return out
}
