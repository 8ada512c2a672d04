import { describe, expect, it } from 'vitest'
import { renameAnswerId } from '../../../src/mcp/relay/answer-text.js'

const BACKEND_ID = 'vmcp-41'

describe('renameAnswerId', () => {
  it("replaces the closing id member of the SDK's serialization with the client's id", () => {
    const text = JSON.stringify({ result: { content: [{ type: 'text', text: 'hi' }] }, jsonrpc: '2.0', id: BACKEND_ID })
    expect(renameAnswerId(text, BACKEND_ID, 7)).toBe(
      '{"result":{"content":[{"type":"text","text":"hi"}]},"jsonrpc":"2.0","id":7}',
    )
  })

  it('writes a string client id as JSON, escapes included', () => {
    const text = JSON.stringify({ error: { code: -32000, message: 'x' }, jsonrpc: '2.0', id: BACKEND_ID })
    const out = renameAnswerId(text, BACKEND_ID, 'a "quoted"\\id')
    expect(JSON.parse(out ?? '')).toEqual({ error: { code: -32000, message: 'x' }, jsonrpc: '2.0', id: 'a "quoted"\\id' })
  })

  it('gives up when the id is not the closing member (another order, whitespace)', () => {
    expect(renameAnswerId(`{"jsonrpc":"2.0","id":"${BACKEND_ID}","result":{}}`, BACKEND_ID, 1)).toBeUndefined()
    expect(renameAnswerId(`{"result":{},"jsonrpc":"2.0","id":"${BACKEND_ID}" }`, BACKEND_ID, 1)).toBeUndefined()
    expect(renameAnswerId(`{"result":{},"jsonrpc":"2.0","id": "${BACKEND_ID}"}`, BACKEND_ID, 1)).toBeUndefined()
    expect(renameAnswerId(`{"result":{},"jsonrpc":"2.0","id":"${BACKEND_ID}"}\n`, BACKEND_ID, 1)).toBeUndefined()
  })

  it('never touches an id inside the result: a nested object or a string that ends alike', () => {
    // The nested object's id is vmcp's: the text ends with "}}", not with the member.
    expect(renameAnswerId(`{"jsonrpc":"2.0","result":{"id":"${BACKEND_ID}"}}`, BACKEND_ID, 1)).toBeUndefined()
    // A key `a"id` (escaped quote): the member's opening quote follows a backslash.
    const escaped = `{"jsonrpc":"2.0","result":{},"a\\"id":"${BACKEND_ID}"}`
    expect(JSON.parse(escaped)).toHaveProperty('a"id', BACKEND_ID)
    expect(renameAnswerId(escaped, BACKEND_ID, 1)).toBeUndefined()
    // Another id of the same prefix: only the exact id closes the text.
    expect(renameAnswerId(`{"result":{},"jsonrpc":"2.0","id":"${BACKEND_ID}1"}`, BACKEND_ID, 1)).toBeUndefined()
  })

  it('replaces the last of duplicate ids, the one JSON.parse read', () => {
    const text = `{"id":"other","result":{},"jsonrpc":"2.0","id":"${BACKEND_ID}"}`
    expect(JSON.parse(text).id).toBe(BACKEND_ID)
    expect(JSON.parse(renameAnswerId(text, BACKEND_ID, 9) ?? '').id).toBe(9)
  })

  it('agrees with parse-and-serialize for any result', () => {
    const values: unknown[] = [
      null,
      0,
      -1.5e300,
      '',
      '"id":"vmcp-41"}',
      'line\nbreak \u2028 \u{1F600}',
      [],
      [{ id: BACKEND_ID }, { '"id"': BACKEND_ID }],
      { nested: { deeper: [1, { id: 'vmcp-41' }] } },
    ]
    for (const result of values) {
      for (const clientId of [0, 12345678901, 'c-1', '']) {
        const text = JSON.stringify({ result, jsonrpc: '2.0', id: BACKEND_ID })
        const out = renameAnswerId(text, BACKEND_ID, clientId)
        expect(out).toBe(JSON.stringify({ result, jsonrpc: '2.0', id: clientId }))
      }
    }
  })
})
