import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/log/index.js'

function capture() {
  const chunks: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'))
      cb()
    },
  })
  return { sink, text: () => chunks.join('') }
}

describe('pretty (terminal) logging', () => {
  it('prints one line per event, fields and all, with secrets still redacted', () => {
    const { sink, text } = capture()
    const logger = createLogger({ pretty: true, destination: sink })
    logger.info({ backend: 'notes', transport: 'stdio', tools: 3, catalog: { tools: ['a', 'b'], nested: { deep: true } } }, 'backend connected')
    logger.warn({ headers: { authorization: 'Bearer sk-secret-123' } }, 'upstream refused')
    logger.info({ url: 'http://127.0.0.1:4483/mcp', connect: 'claude mcp add --transport http vmcp http://127.0.0.1:4483/mcp' }, 'ready')
    const lines = text().split('\n').filter(Boolean)
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: backend connected \{.*"backend":"notes".*"deep":true.*\}$/)
    expect(lines[1]).toContain('WARN: upstream refused')
    expect(lines[1]).toContain('[REDACTED]')
    expect(text()).not.toContain('sk-secret-123')
    expect(lines[2]).toContain('ready {"url":"http://127.0.0.1:4483/mcp","connect":"claude mcp add --transport http vmcp http://127.0.0.1:4483/mcp"}')
    // No colour codes when the destination is not the terminal.
    expect(text()).not.toContain('\u001b[')
  })

  it('JSON lines when not pretty, as before', () => {
    const { sink, text } = capture()
    createLogger({ destination: sink }).info({ a: 1 }, 'hello')
    expect(JSON.parse(text())).toMatchObject({ level: 30, msg: 'hello', a: 1 })
  })
})
