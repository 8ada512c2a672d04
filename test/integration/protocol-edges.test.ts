import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { connectClient, openRawSession, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body })
  const text = await res.text()
  // A session POST answers either JSON or one SSE event carrying the JSON-RPC message.
  const data = /^data: (.*)$/m.exec(text)?.[1] ?? text
  return { status: res.status, json: (data ? JSON.parse(data) : {}) as Record<string, unknown> }
}

// Issue 9 item 8: each edge answered in the protocol's own shape, on both POST paths (a new
// request without a session, and a message of an existing session).
describe.each([true, false])('protocol edges (relay %s)', (relay) => {
  let backend: RunningBackend
  let gw: RunningVmcp
  let session: Record<string, string>

  beforeAll(async () => {
    backend = await startTestBackend(['--name', 'b'])
    gw = await startVmcp({ backends: [{ name: 'b', transport: 'streamable-http', url: backend.url }] }, { relay })
    session = await openRawSession(gw.url)
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
  })

  it('an unknown tool reads "Unknown tool: x" once, as JSON-RPC -32602', async () => {
    const r = await post(gw.url, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'x', arguments: {} } }), session)
    expect(r.json).toEqual({ jsonrpc: '2.0', id: 7, error: { code: -32602, message: 'Unknown tool: x' } })
    // The SDK client prefixes the code once, itself: never twice.
    const client = await connectClient(gw.url)
    await expect(client.callTool({ name: 'x', arguments: {} })).rejects.toThrow(/^MCP error -32602: Unknown tool: x$/)
    await client.close()
  })

  it('tools/call without params is -32602 with a readable message (no raw zod issues)', async () => {
    const r = await post(gw.url, JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call' }), session)
    expect(r.json).toMatchObject({ jsonrpc: '2.0', id: 8, error: { code: -32602 } })
    const message = (r.json.error as { message: string }).message
    expect(message).toBe('Invalid params for tools/call: params is required')
  })

  it('tools/call with a name that is not a string names the field', async () => {
    const r = await post(gw.url, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 5 } }), session)
    expect(r.json).toEqual({
      jsonrpc: '2.0',
      id: 9,
      error: { code: -32602, message: 'Invalid params for tools/call: params.name must be a string' },
    })
  })

  it.each([
    ['without a session', false],
    ['in a session', true],
  ])('a JSON body that is not JSON-RPC is -32600 Invalid Request (%s)', async (_, inSession) => {
    const r = await post(gw.url, '{"hello":"world"}', inSession ? session : {})
    expect(r.status).toBe(400)
    expect(r.json).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: not a JSON-RPC 2.0 message' } })
  })

  it.each([
    ['without a session', false],
    ['in a session', true],
  ])('Content-Type text/plain is HTTP 415 (%s)', async (_, inSession) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    const r = await post(gw.url, body, { ...(inSession ? session : {}), 'content-type': 'text/plain' })
    expect(r.status).toBe(415)
    expect(r.json).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32000, message: 'Unsupported Media Type: Content-Type must be application/json' },
    })
  })
})

describe('GET /', () => {
  let gw: RunningVmcp
  beforeAll(async () => {
    gw = await startVmcp({ name: 'edge-test', backends: [] })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('answers with the name, version, the /mcp URL, /status and the docs, not a bare 404', async () => {
    const res = await fetch(`${gw.base}/`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    const body = (await res.json()) as Record<string, string>
    expect(body).toEqual({
      name: 'edge-test',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      mcp: `${gw.base}/mcp`,
      status: `${gw.base}/status`,
      docs: 'https://github.com/vmcp/vmcp#readme',
    })
  })

  it('other unknown paths stay a JSON 404', async () => {
    const res = await fetch(`${gw.base}/nope`)
    expect(res.status).toBe(404)
    expect(await res.json()).toEqual({ error: 'not_found' })
  })
})
