import {
  classifyInboundRequest,
  PROTOCOL_VERSION_META_KEY,
  type InboundClassificationOutcome,
} from '@modelcontextprotocol/server'
import {
  isInitializeRequest,
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from '../../log/index.js'

/** `legacy`: the 2025 revisions (initialize + sessions). `modern`: 2026-07-28 (per-request). */
export type Era = 'legacy' | 'modern'

/** The revisions vmcp serves on its sessionless path. */
export const MODERN_PROTOCOL_VERSIONS: readonly string[] = ['2026-07-28']

/**
 * Decides which path serves an authenticated `/mcp` request whose body is already parsed.
 * The body decides (MCP 2026-07-28 §Versioning: a request claims its revision in
 * `params._meta["io.modelcontextprotocol/protocolVersion"]`), with the SDK's own classifier, so
 * vmcp and the v2 entry never disagree. One exception first: a request on an established 2025
 * session (it carries `Mcp-Session-Id`) without that claim stays on its session, whatever its
 * `MCP-Protocol-Version` header says; see {@link alignSessionProtocolVersion}.
 */
export async function classifyEra(request: Request, body: unknown): Promise<Era> {
  if (request.headers.has('mcp-session-id') && !claimsEnvelope(body)) return 'legacy'
  // isLegacyRequest's rule on a parsed body: no JSON body is 2025 traffic.
  if (request.method === 'POST' && body === undefined) return 'legacy'
  return inboundOutcome(request, body).kind === 'legacy' ? 'legacy' : 'modern'
}

const outcomes = new WeakMap<Request, InboundClassificationOutcome>()

/**
 * The SDK's classification of a request with its parsed body (what `isLegacyRequest` and the
 * v2 entry decide on), computed once per request: the era decision and the endpoint's own
 * checks (wire.ts) read the same outcome.
 */
export function inboundOutcome(request: Request, body: unknown): InboundClassificationOutcome {
  let outcome = outcomes.get(request)
  if (!outcome) {
    const h = request.headers
    const header = (name: string) => h.get(name) ?? undefined
    outcome = classifyInboundRequest({
      httpMethod: request.method,
      protocolVersionHeader: header('mcp-protocol-version'),
      mcpMethodHeader: header('mcp-method'),
      mcpNameHeader: header('mcp-name'),
      ...(body !== undefined ? { body } : {}),
    })
    outcomes.set(request, outcome)
  }
  return outcome
}

/** The body claims a revision in `_meta` (2026-07-28 §Versioning): it is not a 2025 session's message. */
export function claimsEnvelope(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body]
  return messages.some((m) => {
    const meta = (m as { params?: { _meta?: unknown } } | null)?.params?._meta
    return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta
  })
}

/** The 2025 revision an initialize request will negotiate (the SDK's rule: asked for, or latest). */
export function negotiatedLegacyVersion(body: unknown): string {
  const init = (Array.isArray(body) ? body : [body]).find((m) => isInitializeRequest(m))
  const asked = init?.params.protocolVersion
  return asked && SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION
}

interface LegacySession {
  /** The session id's fingerprint: the id itself never goes into a log line. */
  readonly logId: string
  readonly protocolVersion: string
  eraMismatchLogged: boolean
}

/**
 * Some clients (claude.ai has been reported to) send `MCP-Protocol-Version: 2026-07-28` on a
 * session they opened with a 2025 `initialize`. The session's revision was fixed at initialize
 * (MCP 2025-11-25 §Lifecycle), so vmcp answers such a request as that revision instead of
 * failing it with 400, and logs it once per session. Unknown versions still get the 400.
 */
export function alignSessionProtocolVersion(
  request: Request,
  session: LegacySession,
  logger: Logger,
): Request {
  const sent = request.headers.get('mcp-protocol-version')
  if (sent === null || !MODERN_PROTOCOL_VERSIONS.includes(sent) || !session.protocolVersion)
    return request
  if (!session.eraMismatchLogged) {
    session.eraMismatchLogged = true
    logger.warn(
      { session: session.logId, sent, answeredAs: session.protocolVersion },
      'client sent a 2026-07-28 protocol version header on a 2025 session; answering as the session version',
    )
  }
  const headers = new Headers(request.headers)
  headers.set('mcp-protocol-version', session.protocolVersion)
  // The body was already read and parsed by the caller; the transport gets it as parsedBody.
  return new Request(request.url, { method: request.method, headers, signal: request.signal })
}
