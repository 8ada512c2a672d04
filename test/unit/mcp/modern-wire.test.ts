import { describe, expect, it } from 'vitest'
import { encodeModernAnswer, passesLadder, withoutEnvelope } from '../../../src/mcp/modern/wire.js'

const envelope = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
}
const call = {
  jsonrpc: '2.0',
  id: 7,
  method: 'tools/call',
  params: { name: 'a_echo', arguments: { text: 'x' }, _meta: envelope },
}
const standard = {
  'content-type': 'application/json',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'a_echo',
}
const post = (headers: Record<string, string>) =>
  new Request('http://127.0.0.1/mcp', { method: 'POST', headers })
const without = (name: string) =>
  Object.fromEntries(Object.entries(standard).filter(([k]) => k !== name))
const serverInfo = { name: 'vmcp', version: '1' }
const SERVER_INFO = 'io.modelcontextprotocol/serverInfo'

describe('passesLadder: what vmcp answers without the SDK entry', () => {
  it('takes a request whose standard headers are present and agree with the body', () => {
    expect(passesLadder(post(standard), call)).toBe(call)
  })

  // Each of these is the SDK entry's to answer (with -32020, -32602 or 415): vmcp must not.
  it.each([
    ['no MCP-Protocol-Version', without('mcp-protocol-version')],
    ['no Mcp-Method', without('mcp-method')],
    ['no Mcp-Name', without('mcp-name')],
    ['an Mcp-Method naming another method', { ...standard, 'mcp-method': 'tools/list' }],
    ['an Mcp-Name naming another tool', { ...standard, 'mcp-name': 'b_echo' }],
    ['a Base64-encoded Mcp-Name', { ...standard, 'mcp-name': '=?base64?YV9lY2hv?=' }],
    ['a revision vmcp does not serve', { ...standard, 'mcp-protocol-version': '2099-01-01' }],
    ['a non-JSON content type', { ...standard, 'content-type': 'text/plain' }],
  ])('leaves a request with %s to the SDK', (_, headers) => {
    expect(passesLadder(post(headers), call)).toBeUndefined()
  })

  it('leaves malformed envelopes, notifications and batches to the SDK', () => {
    const badMeta = {
      ...call,
      params: {
        ...call.params,
        _meta: { ...envelope, 'io.modelcontextprotocol/clientCapabilities': 3 },
      },
    }
    expect(passesLadder(post(standard), badMeta)).toBeUndefined()
    const note = {
      jsonrpc: '2.0',
      method: 'notifications/initialized',
      params: { _meta: envelope },
    }
    expect(passesLadder(post({ ...standard, 'mcp-method': note.method }), note)).toBeUndefined()
    expect(passesLadder(post(standard), [call])).toBeUndefined()
  })
})

describe('encodeModernAnswer: 2025-shaped answers as 2026-07-28 results', () => {
  it('stamps resultType and the server identity, keeping what the backend set', () => {
    const out = encodeModernAnswer(
      'tools/call',
      { jsonrpc: '2.0', id: 1, result: { content: [], _meta: { trace: 'k' } } },
      serverInfo,
    )
    expect(out).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: {
        content: [],
        resultType: 'complete',
        _meta: { trace: 'k', [SERVER_INFO]: serverInfo },
      },
    })
  })

  it('fills ttlMs and cacheScope on cacheable results only, keeping valid ones', () => {
    const read = encodeModernAnswer(
      'resources/read',
      { jsonrpc: '2.0', id: 1, result: { contents: [] } },
      serverInfo,
    )
    expect(read).toMatchObject({ result: { ttlMs: 0, cacheScope: 'private' } })
    const kept = encodeModernAnswer(
      'resources/read',
      { jsonrpc: '2.0', id: 1, result: { contents: [], ttlMs: 5000, cacheScope: 'public' } },
      serverInfo,
    )
    expect(kept).toMatchObject({ result: { ttlMs: 5000, cacheScope: 'public' } })
    const bad = encodeModernAnswer(
      'tools/list',
      { jsonrpc: '2.0', id: 1, result: { tools: [], ttlMs: -1 } },
      serverInfo,
    )
    expect(bad).toMatchObject({ result: { ttlMs: 0 } })
    const callResult = encodeModernAnswer(
      'tools/call',
      { jsonrpc: '2.0', id: 1, result: { content: [] } },
      serverInfo,
    )
    expect(callResult).not.toHaveProperty('result.ttlMs')
  })

  it('passes input_required through on methods that allow it, and fails it elsewhere', () => {
    const pending = { resultType: 'input_required', requestState: 's' }
    expect(
      encodeModernAnswer('tools/call', { jsonrpc: '2.0', id: 1, result: pending }, serverInfo),
    ).toMatchObject({
      result: pending,
    })
    expect(
      encodeModernAnswer('tools/list', { jsonrpc: '2.0', id: 1, result: pending }, serverInfo),
    ).toMatchObject({
      error: { code: -32603 },
    })
  })

  it("maps 2025's resource-not-found -32002 to 2026-07-28's -32602 and keeps other errors", () => {
    const gone = {
      jsonrpc: '2.0' as const,
      id: 1,
      error: { code: -32002, message: 'Resource not found' },
    }
    expect(encodeModernAnswer('resources/read', gone, serverInfo)).toEqual({
      ...gone,
      error: { ...gone.error, code: -32602 },
    })
    const other = { jsonrpc: '2.0' as const, id: 1, error: { code: -32601, message: 'nope' } }
    expect(encodeModernAnswer('resources/read', other, serverInfo)).toBe(other)
  })
})

describe('withoutEnvelope', () => {
  it('keeps the envelope at vmcp and everything else in _meta for the backend', () => {
    expect(withoutEnvelope({ a: 1, _meta: { ...envelope, progressToken: 3 } })).toEqual({
      a: 1,
      _meta: { progressToken: 3 },
    })
    expect(withoutEnvelope({ a: 1, _meta: envelope })).toEqual({ a: 1 })
  })
})
