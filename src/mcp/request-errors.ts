import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import type { RpcRequest, RpcResponse } from './routing/json-rpc.js'

type RpcError = NonNullable<RpcResponse['error']>

// The request methods vmcp serves whose params have a shape to check.
const SCHEMAS = new Map<string, { safeParse(v: unknown): { success: boolean; error?: { issues: Issue[] } } }>([
  ['tools/call', CallToolRequestSchema],
  ['prompts/get', GetPromptRequestSchema],
  ['resources/read', ReadResourceRequestSchema],
  ['resources/subscribe', SubscribeRequestSchema],
  ['resources/unsubscribe', UnsubscribeRequestSchema],
  ['completion/complete', CompleteRequestSchema],
  ['logging/setLevel', SetLevelRequestSchema],
])

interface Issue {
  code: string
  path: PropertyKey[]
  message: string
  expected?: string
}

// The SDK's McpError puts `MCP error <code>: ` before its message, and a client adds it again.
const MCP_ERROR_PREFIX = /^(?:MCP error -?\d+: )+/

/**
 * The error a client reads for `request`, from the error the SDK server produced: params that do
 * not fit the method are -32602 naming the field (JSON-RPC 2.0 §5.1), not -32603 with the raw
 * zod issue list; any message loses the `MCP error <code>: ` prefix, which the client adds itself.
 * Runs only for error answers: successful calls pay nothing.
 */
export function clientError(request: RpcRequest, error: RpcError): RpcError {
  const invalid = invalidParams(request)
  if (invalid) return { code: ErrorCode.InvalidParams, message: invalid }
  const message = error.message.replace(MCP_ERROR_PREFIX, '')
  return message === error.message ? error : { ...error, message }
}

/** Why `request`'s params do not fit its method, in one line; undefined when they do. */
export function invalidParams(request: RpcRequest): string | undefined {
  const schema = SCHEMAS.get(request.method)
  const result = schema?.safeParse(request)
  if (!result || result.success || !result.error) return undefined
  const what = result.error.issues.slice(0, 3).map((i) => describe(i, request))
  return `Invalid params for ${request.method}: ${what.join('; ')}`
}

function describe(issue: Issue, request: RpcRequest): string {
  const path = issue.path.map(String).join('.')
  let value: unknown = request
  for (const k of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[k]
  if (issue.code === 'invalid_type') {
    if (value === undefined) return `${path} is required`
    const expected = issue.expected ?? 'value'
    return `${path} must be ${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}`
  }
  return `${path}: ${issue.message}`
}
