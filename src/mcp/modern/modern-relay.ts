import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  SERVER_INFO_META_KEY,
} from '@modelcontextprotocol/server'
import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import type { BackendRuntime } from '../backend-runtime.js'
import type { Catalog } from '../catalog.js'
import { buildPostHeaders, type RelayBackend, type RelayBackendSession } from '../relay/http-relay.js'
import type { RpcMessage, RpcRequest } from '../routing/json-rpc.js'
import { MODERN_PROTOCOL_VERSIONS } from './era.js'
import { isPlainHeaderValue, paramHeaders } from './tool-headers.js'
import { MCP_NAME_SOURCE } from './wire.js'

const MODERN_VERSION = MODERN_PROTOCOL_VERSIONS[0] as string

// A 2026-07-28 backend has no session: every request stands alone (MCP 2026-07-28 §Versioning),
// and a call is cancelled by closing its stream (§Cancellation), with no notice.
const STATELESS: RelayBackendSession = {
  sessionId: undefined,
  protocolVersion: MODERN_VERSION,
  cancelsByClosing: true,
}

/**
 * Whether a call to a 2026-07-28 Streamable HTTP backend can take the raw relay in that
 * revision: a healthy backend (one that also answers 2025 requests too: a 2026-07-28 caller
 * gets the revision's own answers, such as -32021 for a capability it did not declare), a name
 * that fits a header as it is, and for tools/call a tool the catalog knows (its `x-mcp-header`
 * markings say which `Mcp-Param-*` headers to send, SEP-2243). Anything else goes through the
 * v2 client (modern/backend-link.ts).
 */
export function isModernRelayable(
  runtime: BackendRuntime | undefined,
  request: RpcRequest,
  catalog: Catalog | undefined,
): runtime is BackendRuntime {
  if (!runtime || runtime.config.transport !== 'streamable-http') return false
  if (!runtime.modern) return false
  if (runtime.health !== 'healthy' && runtime.health !== 'per-user') return false
  const field = MCP_NAME_SOURCE[request.method]
  const name = field === undefined ? undefined : request.params?.[field]
  // A name sent as it is (anything else would need the revision's encoding of Mcp-Name; such
  // calls take the v2 client).
  if (field !== undefined && !(typeof name === 'string' && isPlainHeaderValue(name)))
    return false
  // A tool the catalog knows: its markings say which Mcp-Param-* headers to send.
  return request.method !== 'tools/call' || catalog?.tools.some((t) => t.name === name) === true
}

/**
 * The 2025 relay's way to a backend, speaking 2026-07-28 instead: no session, the revision in
 * `MCP-Protocol-Version`, and the request mirrored in `Mcp-Method`, `Mcp-Name` and the
 * `Mcp-Param-*` headers its tool's markings ask for (MCP 2026-07-28 §Standard Request Headers,
 * §Custom Headers); `toolOf` finds a marked tool by the backend's own name. Credentials and configured
 * headers are the base's.
 */
export function modernRelayBackend(
  base: RelayBackend,
  toolOf: (name: string) => Tool | undefined,
): RelayBackend {
  const headers = async (signal?: AbortSignal, request?: RpcRequest) => {
    const out = await base.headers(signal)
    if (!request) return out
    out['mcp-method'] = request.method
    const field = MCP_NAME_SOURCE[request.method]
    const name = field === undefined ? undefined : request.params?.[field]
    if (typeof name === 'string') out['mcp-name'] = name
    // The arguments the backend's tool marks, mirrored as it asked (SEP-2243): derived from
    // the body only, never copied from the caller's headers.
    const tool = request.method === 'tools/call' && typeof name === 'string' ? toolOf(name) : undefined
    if (tool) Object.assign(out, paramHeaders(tool, request.params?.arguments))
    return out
  }
  return {
    ...base,
    session: async () => STATELESS,
    headers,
    target: async (_lost, request) => ({
      session: STATELESS,
      headers: buildPostHeaders(await headers(undefined, request), STATELESS),
    }),
  }
}

/**
 * Request params as vmcp sends them to a 2026-07-28 backend: the caller's own envelope stays at
 * vmcp, vmcp's goes in its place. vmcp declares no client capabilities: a call that may need
 * input never takes this path (the v2 client fulfils or returns input_required there).
 */
export function withVmcpEnvelope(
  params: Record<string, unknown>,
  clientInfo: { name: string; version: string },
): Record<string, unknown> {
  const meta = (params._meta as Record<string, unknown> | undefined) ?? {}
  return {
    ...params,
    _meta: {
      ...meta,
      [PROTOCOL_VERSION_META_KEY]: MODERN_VERSION,
      [CLIENT_INFO_META_KEY]: clientInfo,
      [CLIENT_CAPABILITIES_META_KEY]: {},
    },
  }
}

/** A backend's result without its identity in `_meta`: callers see vmcp's serverInfo. */
export function withoutServerInfo<T extends object>(result: T): T {
  const meta = (result as { _meta?: Record<string, unknown> })._meta
  if (!meta || !(SERVER_INFO_META_KEY in meta)) return result
  const { [SERVER_INFO_META_KEY]: _backend, ...rest } = meta
  const out: Record<string, unknown> = { ...(result as Record<string, unknown>) }
  if (Object.keys(rest).length > 0) out._meta = rest
  else delete out._meta
  return out as T
}

/** A relayed answer without the backend's identity (as the v2 link passes results on). */
export function withoutBackendIdentity(message: RpcMessage): RpcMessage {
  if (!('result' in message) || typeof message.result !== 'object' || message.result === null)
    return message
  const result = withoutServerInfo(message.result)
  return result === message.result ? message : ({ ...message, result } as RpcMessage)
}
