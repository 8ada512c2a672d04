import {
  Client,
  StreamableHTTPClientTransport,
  type ClientCapabilities,
} from '@modelcontextprotocol/client'
import { FIXTURES } from './backends.js'

/** The 2026-07-28 fixture backend (v2 SDK createMcpHandler; also serves 2025 per request). */
export const MODERN_BACKEND = `${FIXTURES}modern-http.mjs`

export type NegotiationMode = 'auto' | 'legacy' | { pin: '2026-07-28' }

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
