import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startHttpBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

describe('transports', () => {
  let sse: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    sse = await startHttpBackend(TEST_BACKEND, ['--transport', 'sse', '--name', 'legacy'])
    gw = await startVmcp({ backends: [{ name: 'legacy', transport: 'sse', url: sse.url }] })
  })
  afterAll(async () => {
    await gw?.close()
    await sse?.close()
  })

  it('aggregates a backend that speaks the legacy HTTP+SSE transport', async () => {
    const client = await connectClient(gw.url)
    expect(await callText(client, 'legacy_echo', { text: 'old' })).toBe('legacy: old')
    await client.close()
  })

  it.each(['2025-03-26', '2025-06-18', '2025-11-25'])('negotiates protocol version %s with clients', async (version) => {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'v', version: '1' } },
      }),
    })
    expect(res.status).toBe(200)
    const text = await res.text()
    const data = JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? '{}') as { result: { protocolVersion: string } }
    expect(data.result.protocolVersion).toBe(version)
  })
})
