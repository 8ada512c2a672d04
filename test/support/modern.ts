import {
  Client,
  StreamableHTTPClientTransport,
  type ClientCapabilities,
} from '@modelcontextprotocol/client'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { expect, vi } from 'vitest'
import { FIXTURES, startHttpBackend, type RunningBackend } from './backends.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from './vmcp.js'
import { EVENTUALLY } from './wait.js'

/** The 2026-07-28 fixture backend (v2 SDK createMcpHandler; also serves 2025 per request). */
export const MODERN_BACKEND = `${FIXTURES}modern-http.mjs`

export type NegotiationMode = 'auto' | 'legacy' | { pin: '2026-07-28' }

/** The fixture backend behind two vmcps: `raw` with its relay (the default), `sdk` without. */
export interface BothPaths {
  backend: RunningBackend
  raw: RunningVmcp
  sdk: RunningVmcp
  close(): Promise<void>
}

/**
 * Starts the fixture backend `name` (with `args`) and two vmcps in front of it, so one request
 * can be compared on the raw relay and on the SDK path (`relay: false`).
 */
export async function fixtureBehindBothPaths(name: string, args: string[]): Promise<BothPaths> {
  const backend = await startHttpBackend(MODERN_BACKEND, ['--name', name, ...args])
  const config = { backends: [{ name, transport: 'streamable-http', url: backend.url }] }
  const started = await Promise.allSettled([startVmcp(config), startVmcp(config, { relay: false })])
  const close = async () => {
    await Promise.allSettled(started.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)))
    await backend.close()
  }
  const [raw, sdk] = started
  if (raw.status === 'rejected' || sdk.status === 'rejected') {
    await close()
    throw raw.status === 'rejected' ? raw.reason : (sdk as PromiseRejectedResult).reason
  }
  return { backend, raw: raw.value, sdk: sdk.value, close }
}

/** A v2 SDK client connected with the given era negotiation. */
export async function connectV2(
  url: string,
  mode: NegotiationMode,
  options: { token?: string; fetch?: typeof fetch; capabilities?: ClientCapabilities } = {},
): Promise<Client> {
  const client = new Client(
    { name: 'v2-test-client', version: '1.0.0' },
    { versionNegotiation: { mode }, capabilities: options.capabilities ?? {} },
  )
  const headers: Record<string, string> = {}
  if (options.token) headers.authorization = `Bearer ${options.token}`
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers },
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
  )
  return client
}

/** Calls a tool and returns its first text content. */
export async function callTextV2(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<string> {
  const res = await client.callTool({ name, arguments: args })
  const first = (res.content as Array<{ type: string; text?: string }>)[0]
  return first?.text ?? ''
}

/** One raw modern JSON-RPC POST, headers as the spec asks unless overridden. */
export async function postModern(
  url: string,
  method: string,
  params: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  capabilities: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': capabilities,
        },
      },
    }),
  })
  const text = await res.text()
  const data = /^data: (.*)$/m.exec(text)?.[1] ?? text
  return { status: res.status, body: JSON.parse(data) as Record<string, unknown> }
}

/** The ways a v2 client negotiates, and the era each lands on at vmcp. */
export const ERA_MODES: Array<[string, NegotiationMode, 'modern' | 'legacy']> = [
  ['auto', 'auto', 'modern'],
  ['pinned 2026-07-28', { pin: '2026-07-28' }, 'modern'],
  ['legacy', 'legacy', 'legacy'],
]

/**
 * Accepts every elicitation the client is asked for, recording its message: `{ ok: true }` for
 * the 2026 fixture's yes/no schema, `{ answer: 'yes' }` for the 2025 fixture's question.
 */
export function acceptElicitations(client: Client, asked: string[]): void {
  // A modern caller gets input_required and retries; a legacy one gets the requests pushed.
  client.setRequestHandler('elicitation/create', async (req) => {
    asked.push(req.params.message)
    const schema = (req.params as { requestedSchema?: { properties?: object } }).requestedSchema
    const content: Record<string, string | boolean> =
      schema?.properties && 'ok' in schema.properties ? { ok: true } : { answer: 'yes' }
    return { action: 'accept', content }
  })
}

/**
 * `<backend>_add_tool` through a modern caller: a modern listener (subscriptions/listen) and a
 * 2025 session both hear tools/list_changed, and both see the added tool.
 */
export async function expectToolListChangeHeard(url: string, backend: string): Promise<void> {
  const modern = await connectV2(url, 'auto')
  let changed = 0
  modern.setNotificationHandler('notifications/tools/list_changed', async () => {
    changed++
  })
  const sub = await modern.listen({ toolsListChanged: true })
  const legacy = await connectClient(url)
  let legacyChanged = 0
  legacy.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    legacyChanged++
  })
  // The 2025 session's standalone stream is open once it has answered a request.
  await legacy.listTools()
  expect(await callTextV2(modern, `${backend}_add_tool`, { name: 'late' })).toBe('added')
  await vi.waitFor(() => {
    expect(changed).toBeGreaterThan(0)
    expect(legacyChanged).toBeGreaterThan(0)
  }, EVENTUALLY)
  expect((await modern.listTools()).tools.map((t) => t.name)).toContain(`${backend}_late`)
  expect(await callText(legacy, `${backend}_late`)).toBe('late')
  await sub.close()
  await Promise.all([modern.close(), legacy.close()])
}
