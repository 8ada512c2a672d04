import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRawSession, startVmcp, type RunningVmcp } from '../support/vmcp.js'

/**
 * A 2025 Streamable HTTP backend written by hand, so each answer's exact bytes are the test's:
 * JSON in the SDK's member order, in another order with spaces, and pretty-printed over several
 * SSE `data:` lines after a log event.
 */
function rawBackend(): Promise<{ url: string; server: Server }> {
  const tool = (name: string) => ({ name, inputSchema: { type: 'object' } })
  const server = createServer((req, res) => {
    // No standalone stream (Streamable HTTP allows 405 for GET); DELETE ends nothing to keep.
    if (req.method !== 'POST') {
      res.writeHead(req.method === 'DELETE' ? 200 : 405)
      return res.end()
    }
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      const msg = JSON.parse(body) as { id?: string | number; method: string; params?: Record<string, unknown> }
      const json = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers })
        res.end(text)
      }
      if (msg.method === 'initialize') {
        const result = {
          protocolVersion: '2025-06-18',
          capabilities: { tools: {}, logging: {} },
          serverInfo: { name: 'raw', version: '1.0.0' },
        }
        return json(200, JSON.stringify({ result, jsonrpc: '2.0', id: msg.id }), { 'mcp-session-id': 'raw-session' })
      }
      if (req.headers['mcp-session-id'] !== 'raw-session') {
        return json(400, JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: Server not initialized' } }))
      }
      if (msg.id === undefined) {
        res.writeHead(202)
        return res.end()
      }
      if (msg.method === 'tools/list') {
        const result = { tools: [tool('exact'), tool('spaced'), tool('pretty')] }
        return json(200, JSON.stringify({ result, jsonrpc: '2.0', id: msg.id }))
      }
      if (msg.method !== 'tools/call') {
        return json(200, JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } }))
      }
      const id = JSON.stringify(msg.id)
      const name = (msg.params as { name: string }).name
      if (name === 'exact') {
        // Escapes kept as the backend wrote them, and a nested member that looks like the id.
        const result = `{"content":[{"type":"text","text":"caf\\u00e9 ${id.replace(/"/g, '\\"')}"}],"meta":{"id":${id}}}`
        return json(200, `{"result":${result},"jsonrpc":"2.0","id":${id}}`)
      }
      if (name === 'spaced') {
        return json(200, `{"jsonrpc": "2.0", "id": ${id}, "result": {"content": [{"type": "text", "text": "spaced"}]}}`)
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const log = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'working' } }
      res.write(`event: message\ndata: ${JSON.stringify(log)}\n\n`)
      // The result pretty-printed, the id closing the text as the SDK writes it: line breaks
      // inside an answer whose id could be renamed in place.
      const pretty = `{"result":${JSON.stringify({ content: [{ type: 'text', text: 'pretty' }] }, null, 2)},"jsonrpc":"2.0","id":${id}}`
      res.end(`event: message\n${pretty.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`)
    })
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server })),
  )
}

/** Every `data:` payload of an SSE body, one event each. */
function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((e) => e.includes('data:'))
    .map((e) =>
      JSON.parse(
        e
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n'),
      ),
    )
}

describe('relayed answers keep the backend’s JSON text, with only the id renamed', () => {
  let backend: { url: string; server: Server }
  let gw: RunningVmcp
  let headers: Record<string, string>

  beforeAll(async () => {
    backend = await rawBackend()
    gw = await startVmcp({ backends: [{ name: 'raw', transport: 'streamable-http', url: backend.url }] })
    headers = await openRawSession(gw.url)
  })
  afterAll(async () => {
    await gw?.close()
    await new Promise((r) => backend?.server.close(r))
  })

  const call = (id: number | string, name: string) =>
    fetch(gw.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } }),
    })

  it('passes a result in the SDK’s member order through byte for byte but for the id', async () => {
    const res = await call('c-"1"', 'raw_exact')
    expect(res.headers.get('content-type')).toBe('application/json')
    const text = await res.text()
    // The backend's \u00e9 escape is still there: the text was not parsed and written again.
    expect(text).toMatch(/^\{"result":\{"content":\[\{"type":"text","text":"caf\\u00e9 \\"vmcp-[0-9]+\\""\}\],"meta":\{"id":"vmcp-[0-9]+"\}\},"jsonrpc":"2\.0","id":"c-\\"1\\""\}$/)
    expect(JSON.parse(text).id).toBe('c-"1"')
  })

  it('serializes an answer whose id is not its closing member, as before', async () => {
    const res = await call(8, 'raw_spaced')
    expect(await res.json()).toEqual({ result: { content: [{ type: 'text', text: 'spaced' }] }, jsonrpc: '2.0', id: 8 })
  })

  it('writes a pretty-printed answer after an event as one well-formed SSE event', async () => {
    const res = await call(9, 'raw_pretty')
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const text = await res.text()
    const [log, answer] = events(text)
    expect(log).toMatchObject({ method: 'notifications/message', params: { data: 'working' } })
    expect(answer).toEqual({ result: { content: [{ type: 'text', text: 'pretty' }] }, jsonrpc: '2.0', id: 9 })
    // Every line of the answer's event is a field: no bare JSON line leaked out of `data:`.
    const last = text.trim().split('\n\n').at(-1) ?? ''
    for (const line of last.split('\n')) expect(line).toMatch(/^(event|data):/)
  })
})
