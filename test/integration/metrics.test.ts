import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { callTextV2, connectV2 } from '../support/modern.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

/** Every sample of a Prometheus text exposition, by series (name and labels). */
function samples(text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line)
    if (m && !line.startsWith('#')) out[m[1] as string] = Number(m[2])
  }
  return out
}

describe.each([true, false])('/metrics (relay %s)', (relay) => {
  let backend: RunningBackend
  let gw: RunningVmcp
  let client: Client
  const scrape = async () => {
    const res = await fetch(`${gw.base}/metrics`)
    expect(res.status).toBe(200)
    return res.text()
  }

  beforeAll(async () => {
    backend = await startTestBackend(['--name', 'h'])
    gw = await startVmcp(
      {
        backends: [
          { name: 'h', transport: 'streamable-http', url: backend.url },
          { name: 's', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio', '--name', 's'] },
        ],
      },
      { relay },
    )
    client = await connectClient(gw.url)
  })
  afterAll(async () => {
    await client?.close()
    await gw?.close()
    await backend?.close()
  })

  it('counts requests by method, serving backend and outcome, with latency histograms', async () => {
    await client.listTools()
    expect(await callText(client, 'h_echo', { text: 'a' })).toBe('h: a')
    expect(await callText(client, 'h_echo', { text: 'b' })).toBe('h: b')
    expect(await callText(client, 's_echo', { text: 'c' })).toBe('s: c')
    const failed = await client.callTool({ name: 'h_fail', arguments: {} })
    expect(failed.isError).toBe(true)
    await expect(client.callTool({ name: 'nope', arguments: {} })).rejects.toThrow(/Unknown tool: nope/)

    const all = samples(await scrape())
    expect(all).toMatchObject({
      'vmcp_requests_total{method="initialize",backend="",outcome="ok"}': 1,
      'vmcp_requests_total{method="tools/list",backend="",outcome="ok"}': 1,
      'vmcp_requests_total{method="tools/call",backend="h",outcome="ok"}': 2,
      'vmcp_requests_total{method="tools/call",backend="s",outcome="ok"}': 1,
      'vmcp_requests_total{method="tools/call",backend="h",outcome="tool_error"}': 1,
      'vmcp_requests_total{method="tools/call",backend="",outcome="error"}': 1,
      'vmcp_request_duration_seconds_count{method="tools/call",backend="h"}': 3,
      'vmcp_request_duration_seconds_bucket{le="+Inf",method="tools/call",backend="s"}': 1,
    })
    expect(all['vmcp_request_duration_seconds_sum{method="tools/call",backend="s"}']).toBeGreaterThan(0)
  })

  it('each access line carries the JSON-RPC method, the tool, the backend, the outcome and the duration', () => {
    const lines = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request')
    const call = lines.find((l) => l.tool === 'h_echo')
    expect(call).toMatchObject({ method: 'POST', path: '/mcp', status: 200, rpc: 'tools/call', backend: 'h', outcome: 'ok' })
    expect(typeof call?.ms).toBe('number')
    expect(lines.find((l) => l.tool === 's_echo')).toMatchObject({ rpc: 'tools/call', backend: 's', outcome: 'ok' })
    expect(lines.find((l) => l.tool === 'h_fail')).toMatchObject({ backend: 'h', outcome: 'tool_error' })
    expect(lines.find((l) => l.tool === 'nope')).toMatchObject({ rpc: 'tools/call', outcome: 'error' })
    expect(lines.find((l) => l.tool === 'nope')).not.toHaveProperty('backend')
    expect(lines.find((l) => l.rpc === 'tools/list')).toMatchObject({ outcome: 'ok' })
    expect(lines.find((l) => l.rpc === 'initialize')).toMatchObject({ status: 200 })
    // Names only: no argument reaches the log.
    expect(gw.logs.join('\n')).not.toContain('"text":"a"')
  })

  it('2026-07-28 requests (no session) are counted and logged the same way', async () => {
    const v2 = await connectV2(gw.url, { pin: '2026-07-28' })
    await v2.listTools()
    expect(await callTextV2(v2, 'h_echo', { text: 'modern' })).toBe('h: modern')
    await v2.close()
    const all = samples(await scrape())
    // The list and the relayed call count like the 2025 ones; with the relay off the call takes the
    // v2 SDK server, which is not counted yet.
    expect(all['vmcp_requests_total{method="tools/call",backend="h",outcome="ok"}']).toBe(relay ? 3 : 2)
    expect(all['vmcp_requests_total{method="tools/list",backend="",outcome="ok"}']).toBe(2)
    const lines = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request')
    if (relay) expect(lines.filter((l) => l.tool === 'h_echo' && l.backend === 'h')).toHaveLength(3)
  })

  it('a call the client abandons is counted as cancelled', async () => {
    const abort = new AbortController()
    const call = client.callTool({ name: 'h_slow', arguments: { ms: 60_000, steps: 2 } }, undefined, { signal: abort.signal })
    abort.abort()
    await expect(call).rejects.toThrow()
    await expect
      .poll(async () => (await scrape()).split('\n').filter((l) => l.startsWith('vmcp_requests_total{method="tools/call",backend="h"')), { timeout: 20_000 })
      .toContain('vmcp_requests_total{method="tools/call",backend="h",outcome="cancelled"} 1')
  })

  it('reports sessions, backend health and restarts, and the process metrics', async () => {
    const text = await scrape()
    expect(samples(text)).toMatchObject({
      vmcp_sessions: 1,
      'vmcp_backend_up{backend="h"}': 1,
      'vmcp_backend_health{backend="s",state="healthy"}': 1,
      'vmcp_backend_health{backend="s",state="unhealthy"}': 0,
      'vmcp_backend_restarts_total{backend="s"}': 0,
    })
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter')
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge')
  })

  it('a method no client should send is counted as "other": clients cannot mint series', async () => {
    await client.request({ method: 'vendor/made-up-1', params: {} }, (await import('zod')).z.object({})).catch(() => undefined)
    await client.request({ method: 'vendor/made-up-2', params: {} }, (await import('zod')).z.object({})).catch(() => undefined)
    const text = await scrape()
    expect(text).not.toContain('vendor/made-up')
    expect(samples(text)['vmcp_requests_total{method="other",backend="",outcome="error"}']).toBe(2)
  })
})
