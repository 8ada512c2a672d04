import { describe, expect, it } from 'vitest'
import type { BackendRuntime } from '../../../src/mcp/backend-runtime.js'
import type { Catalog } from '../../../src/mcp/catalog.js'
import {
  isModernRelayable,
  modernRelayBackend,
  withoutBackendIdentity,
  withVmcpEnvelope,
} from '../../../src/mcp/modern/modern-relay.js'
import type { RelayBackend } from '../../../src/mcp/relay/http-relay.js'

const runtime = (over: Partial<BackendRuntime> = {}) =>
  ({
    config: { transport: 'streamable-http' },
    modern: true,
    servesLegacy: false,
    health: 'healthy',
    ...over,
  }) as unknown as BackendRuntime
const catalog = {
  tools: [
    { name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
    {
      name: 'regional',
      inputSchema: { type: 'object', properties: { region: { type: 'string', 'x-mcp-header': 'Region' } } },
    },
  ],
} as unknown as Catalog
const call = (method: string, params: Record<string, unknown>) => ({
  jsonrpc: '2.0' as const,
  id: 1,
  method,
  params,
})

describe('the raw relay in 2026-07-28 (modern-relay.ts)', () => {
  it('takes calls to a healthy 2026-07-28-only Streamable HTTP backend', () => {
    expect(isModernRelayable(runtime(), call('tools/call', { name: 'echo' }), catalog)).toBe(true)
    expect(isModernRelayable(runtime(), call('resources/read', { uri: 'x://a b' }), catalog)).toBe(true)
    expect(isModernRelayable(runtime(), call('completion/complete', {}), catalog)).toBe(true)
  })

  it('takes dual-era backends too: a 2026-07-28 caller gets answers in its revision', () => {
    const tool = call('tools/call', { name: 'echo' })
    expect(isModernRelayable(runtime({ servesLegacy: true }), tool, catalog)).toBe(true)
  })

  it('leaves to others: 2025 backends, stdio, unhealthy ones', () => {
    const tool = call('tools/call', { name: 'echo' })
    expect(isModernRelayable(runtime({ modern: false }), tool, catalog)).toBe(false)
    expect(isModernRelayable(runtime({ health: 'unhealthy' }), tool, catalog)).toBe(false)
    const stdio = runtime({ config: { transport: 'stdio' } } as Partial<BackendRuntime>)
    expect(isModernRelayable(stdio, tool, catalog)).toBe(false)
  })

  it('leaves to the v2 client what it cannot mirror in headers as it is', () => {
    // SEP-2243 markings ask for Mcp-Param-* headers; an unknown tool has no schema to check.
    // An unknown tool has no markings to mirror; a marked one's headers come from its schema.
    expect(isModernRelayable(runtime(), call('tools/call', { name: 'regional' }), catalog)).toBe(true)
    expect(isModernRelayable(runtime(), call('tools/call', { name: 'gone' }), catalog)).toBe(false)
    for (const uri of ['x://ünï', ' x://lead', 'x://trail ', 'x://a\nb'])
      expect(isModernRelayable(runtime(), call('resources/read', { uri }), catalog)).toBe(false)
  })

  it('sends no session, the revision, and the request mirrored in Mcp-Method and Mcp-Name', async () => {
    const base = {
      name: 'mono',
      url: new URL('http://127.0.0.1:1/mcp'),
      session: async () => ({ sessionId: 'never', protocolVersion: '2025-11-25' }),
      headers: async () => ({ authorization: 'Bearer t' }),
      // The 2025 relay's ready target: its session id must never reach a 2026-07-28 backend.
      target: () => ({ session: { sessionId: 'never', protocolVersion: '2025-11-25' }, headers: { 'mcp-session-id': 'never' } }),
      reportFailure: () => undefined,
      catalogNotification: () => undefined,
    } satisfies RelayBackend
    const modern = modernRelayBackend(base, (name) => catalog.tools.find((t) => t.name === name))
    expect(await modern.session()).toEqual({ sessionId: undefined, protocolVersion: '2026-07-28', cancelsByClosing: true })
    expect(await modern.headers(undefined, call('tools/call', { name: 'echo' }))).toEqual({
      authorization: 'Bearer t',
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
    })
    // SEP-2243: the marked argument, from the body (the Base64 form when not plain).
    const regional = call('tools/call', { name: 'regional', arguments: { region: 'é' } })
    expect(await modern.headers(undefined, regional)).toMatchObject({ 'mcp-param-region': '=?base64?w6k=?=' })
    expect(await modern.target(undefined, call('tools/call', { name: 'echo' }))).toEqual({
      session: { sessionId: undefined, protocolVersion: '2026-07-28', cancelsByClosing: true },
      headers: {
        authorization: 'Bearer t',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
      },
    })
  })

  it("puts vmcp's envelope in place of the caller's and keeps the backend's identity out", () => {
    const params = withVmcpEnvelope(
      { name: 'echo', _meta: { progressToken: 7 } },
      { name: 'vmcp:gw', version: '1' },
    )
    expect(params._meta).toEqual({
      progressToken: 7,
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'vmcp:gw', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    })
    const answer = {
      jsonrpc: '2.0' as const,
      id: 1,
      result: { content: [], _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'mono' }, k: 1 } },
    }
    expect(withoutBackendIdentity(answer)).toEqual({ ...answer, result: { content: [], _meta: { k: 1 } } })
  })
})
