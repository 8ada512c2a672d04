import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { describe, expect, it } from 'vitest'
import { AdoptedStdioTransport, type BackendStdioTransport } from '../../../src/mcp/stdio-transport.js'

/** The probe's process as the adopting transport sees it: what it was sent, and a way to speak. */
function probeProcess() {
  const sent: unknown[] = []
  let closedByProbe = 0
  const process = {
    stderr: null,
    onclose: () => {
      closedByProbe++
    },
    onerror: undefined as ((e: Error) => void) | undefined,
    onmessage: undefined as ((m: unknown) => void) | undefined,
    send: async (m: unknown) => {
      sent.push(m)
    },
    close: async () => {
      process.onclose?.()
    },
  }
  return { process, sent, closedByProbe: () => closedByProbe }
}

const answer = {
  protocolVersion: '2025-11-25',
  capabilities: { tools: { listChanged: true } },
  serverInfo: { name: 'notes', version: '1.0.0' },
  instructions: 'be nice',
}

const flush = () => new Promise<void>((r) => setImmediate(r))

describe('AdoptedStdioTransport: the v1 client takes over a probed 2025 process', () => {
  it("answers initialize with the probe's answer and never sends it, nor initialized, to the process", async () => {
    const { process, sent } = probeProcess()
    const t = new AdoptedStdioTransport(process as unknown as BackendStdioTransport, answer)
    const got: JSONRPCMessage[] = []
    t.onmessage = (m) => got.push(m)
    await t.start()
    await t.send({ jsonrpc: '2.0', id: 7, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'v', version: '1' } } })
    await flush()
    expect(got).toEqual([{ jsonrpc: '2.0', id: 7, result: answer }])
    await t.send({ jsonrpc: '2.0', method: 'notifications/initialized' })
    await t.send({ jsonrpc: '2.0', id: 8, method: 'tools/list', params: {} })
    expect(sent).toEqual([{ jsonrpc: '2.0', id: 8, method: 'tools/list', params: {} }])
  })

  it('holds what the server sends until the v1 handshake is done, then delivers it in order', async () => {
    const { process } = probeProcess()
    const t = new AdoptedStdioTransport(process as unknown as BackendStdioTransport, answer)
    const got: unknown[] = []
    t.onmessage = (m) => got.push(m)
    const early = [
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'one' } },
      { jsonrpc: '2.0', id: 1, method: 'roots/list' },
    ]
    for (const m of early) process.onmessage?.(m)
    await t.send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'v', version: '1' } } })
    await flush()
    expect(got).toHaveLength(1)
    await t.send({ jsonrpc: '2.0', method: 'notifications/initialized' })
    await flush()
    expect(got.slice(1)).toEqual(early)
    const later = { jsonrpc: '2.0', method: 'notifications/tools/list_changed' }
    process.onmessage?.(later)
    expect(got.at(-1)).toEqual(later)
  })

  it("closing it closes the process, and the probe's close handler (child tracking) still runs", async () => {
    const { process, closedByProbe } = probeProcess()
    const t = new AdoptedStdioTransport(process as unknown as BackendStdioTransport, answer)
    let closed = 0
    t.onclose = () => closed++
    await t.close()
    expect(closed).toBe(1)
    expect(closedByProbe()).toBe(1)
  })
})
