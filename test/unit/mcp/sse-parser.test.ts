import { describe, expect, it } from 'vitest'
import { SseParser } from '../../../src/mcp/relay/sse-parser.js'

function parse(chunks: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  const p = new SseParser((data, event) => out.push([event, data]))
  for (const c of chunks) p.push(Buffer.from(c))
  return out
}

describe('SseParser', () => {
  it('dispatches data on a blank line, across chunk boundaries and CRLF', () => {
    expect(parse(['event: message\r\nda', 'ta: {"a":1}\r\n', '\r\n', 'data: x\n\n'])).toEqual([
      ['message', '{"a":1}'],
      ['message', 'x'],
    ])
  })

  it('joins multi-line data, ignores comments, ids and retry, and splits multi-byte characters safely', () => {
    const euro = Buffer.from('data: €1\n\n')
    const out: string[] = []
    const p = new SseParser((data) => out.push(data))
    p.push(Buffer.from(': keep-alive\nid: 7\nretry: 10\ndata: a\ndata: b\n\n'))
    p.push(euro.subarray(0, 7))
    p.push(euro.subarray(7))
    expect(out).toEqual(['a\nb', '€1'])
  })

  it('names events and drops events without data', () => {
    expect(parse(['event: ping\n\n', 'event: other\ndata: y\n\n'])).toEqual([['other', 'y']])
  })

  it('reads fields as §9.2.6 does: no colon means an empty value, one leading space is dropped, other names are ignored', () => {
    expect(
      parse([
        'data\ndata:x\ndata:  two spaces\ndata: a:b\n\n',
        'dat: no\ndatum: no\nDATA: no\nevent\ndata: y\n\n',
        'event: named\nevent:\ndata: z\n\n',
      ]),
    ).toEqual([
      ['message', '\nx\n two spaces\na:b'],
      ['message', 'y'],
      ['message', 'z'],
    ])
  })

  it('refuses an unterminated line past its cap', () => {
    const p = new SseParser(() => undefined, 8)
    expect(() => p.push(Buffer.from('data: 0123456789'))).toThrow('event stream line too long')
  })
})
