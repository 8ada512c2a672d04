import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { freePort } from '../support/http.js'
import { EVENTUALLY } from '../support/wait.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

interface Status {
  backends: Array<{ name: string; health: string; error?: string }>
}

describe('backends that fail: down at startup, killed mid-session, restarted', () => {
  let port: number
  let beta: RunningBackend | undefined
  let gw: RunningVmcp
  let client: Client

  const health = async (name: string) => {
    const s = (await (await fetch(`${gw.base}/status`)).json()) as Status
    return s.backends.find((b) => b.name === name)?.health
  }
  const toolNames = async () => (await client.listTools()).tools.map((t) => t.name)

  beforeAll(async () => {
    port = await freePort()
    gw = await startVmcp({
      backends: [
        { name: 'alpha', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'] },
        { name: 'beta', transport: 'streamable-http', url: `http://127.0.0.1:${port}/mcp` },
      ],
      // Short checks so failures show fast; timeouts long enough for a loaded machine.
      operational: { healthCheckInterval: '1s', healthCheckTimeout: '900ms', discoveryTimeout: '15s' },
    })
    client = await connectClient(gw.url)
  })
  afterAll(async () => {
    await client?.close()
    await gw?.close()
    await beta?.close()
  })

  it('starts without a backend that is down, serving the others', async () => {
    expect(await health('beta')).toBe('unhealthy')
    expect(await health('alpha')).toBe('healthy')
    const names = await toolNames()
    expect(names).toContain('alpha_echo')
    expect(names.some((n) => n.startsWith('beta_'))).toBe(false)
    expect(gw.logs.some((l) => l.includes('"backend":"beta"') && l.includes('backend unavailable'))).toBe(true)
  })

  it('joins the backend when it comes up and tells clients the tool list changed', async () => {
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => resolve()),
    )
    beta = await startTestBackend(['--name', 'beta'], port)
    await changed
    expect(await health('beta')).toBe('healthy')
    expect(await toolNames()).toContain('beta_echo')
    expect(await callText(client, 'beta_echo', { text: 'up' })).toBe('beta: up')
  })

  it('fails calls to a killed backend fast with a tool error naming it; others keep serving', async () => {
    await beta?.kill()
    const res = await client.callTool({ name: 'beta_echo', arguments: { text: 'x' } })
    expect(res.isError).toBe(true)
    expect((res.content as Array<{ text: string }>)[0]?.text).toMatch(/^backend "beta" (failed|is unavailable)/)
    await vi.waitFor(async () => expect(await health('beta')).toBe('unhealthy'), EVENTUALLY)
    const again = await client.callTool({ name: 'beta_echo', arguments: { text: 'x' } })
    expect((again.content as Array<{ text: string }>)[0]?.text).toMatch(/^backend "beta" is unavailable/)
    expect(await callText(client, 'alpha_echo', { text: 'still' })).toBe('alpha: still')
  })

  it('rejoins a restarted backend; the same client session calls it again', async () => {
    beta = await startTestBackend(['--name', 'beta'], port)
    await vi.waitFor(async () => expect(await health('beta')).toBe('healthy'), EVENTUALLY)
    expect(await callText(client, 'beta_echo', { text: 'back' })).toBe('beta: back')
  })

  it('reconnects when a health check finds the backend forgot its session (404), never marking it unhealthy', async () => {
    const marks = () => gw.logs.filter((l) => l.includes('"backend":"beta"') && l.includes('backend unavailable')).length
    const before = marks()
    const expired = await fetch(`http://127.0.0.1:${port}/expire-sessions`, { method: 'POST' })
    expect(((await expired.json()) as { expired: number }).expired).toBeGreaterThan(0)
    await vi.waitFor(
      () => expect(gw.logs.some((l) => l.includes('"backend":"beta"') && l.includes('backend forgot its session; reconnecting'))).toBe(true),
      EVENTUALLY,
    )
    await vi.waitFor(async () => expect(await health('beta')).toBe('healthy'), EVENTUALLY)
    expect(marks()).toBe(before)
    expect(await callText(client, 'beta_echo', { text: 'again' })).toBe('beta: again')
  })

  it('restarts a stdio backend that exits, with backoff, and it rejoins', async () => {
    const res = await client.callTool({ name: 'alpha_crash', arguments: {} })
    expect(res.isError).toBe(true)
    expect((res.content as Array<{ text: string }>)[0]?.text).toContain('backend "alpha"')
    await vi.waitFor(async () => expect(await health('alpha')).toBe('healthy'), EVENTUALLY)
    expect(await callText(client, 'alpha_echo', { text: 'reborn' })).toBe('alpha: reborn')
    expect(gw.logs.some((l) => l.includes('restarting backend process'))).toBe(true)
  })
})

describe('launched HTTP backends (launch:)', () => {
  it('starts the process, connects, restarts it when it dies, and stops it on shutdown', async () => {
    const port = await freePort()
    const gw = await startVmcp({
      backends: [
        {
          name: 'web',
          transport: 'streamable-http',
          url: `http://127.0.0.1:${port}/mcp`,
          launch: { command: process.execPath, args: [TEST_BACKEND, '--transport', 'http', '--port', String(port), '--name', 'web'] },
        },
      ],
      operational: { healthCheckInterval: '1s', healthCheckTimeout: '900ms', discoveryTimeout: '15s' },
    })
    const pids = () =>
      gw.logs
        .filter((l) => l.includes('launched backend process'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid)
    const client = await connectClient(gw.url)
    expect(await callText(client, 'web_echo', { text: 'hi' })).toBe('web: hi')
    const [first] = pids()
    expect(first).toBeGreaterThan(0)
    process.kill(first as number, 'SIGKILL')
    await vi.waitFor(() => expect(pids()).toHaveLength(2), EVENTUALLY)
    await vi.waitFor(async () => expect(await callText(client, 'web_echo', { text: 'again' })).toBe('web: again'), EVENTUALLY)
    await client.close()
    await gw.close()
    const second = pids()[1] as number
    expect(() => process.kill(second, 0)).toThrow()
  })
})

describe('launched backends behind a per-user strategy', () => {
  it('are started at startup even though their catalog is discovered per user', async () => {
    const port = await freePort()
    const gw = await startVmcp(
      {
        backends: [
          {
            name: 'peruser',
            transport: 'streamable-http',
            url: `http://127.0.0.1:${port}/mcp`,
            launch: { command: process.execPath, args: [TEST_BACKEND, '--transport', 'http', '--port', String(port)] },
          },
        ],
        outgoingAuth: {
          backends: {
            peruser: {
              type: 'token_exchange',
              tokenExchange: { tokenUrl: 'http://127.0.0.1:9/token', clientId: 'x', clientSecret: { env: 'X_SECRET' } },
            },
          },
        },
      },
      { env: { X_SECRET: 'x' } },
    )
    const status = (await (await fetch(`${gw.base}/status`)).json()) as { backends: Array<{ health: string }> }
    expect(status.backends[0]?.health).toBe('per-user')
    // The process answers (an MCP GET without a session is a 4xx from the backend itself).
    await vi.waitFor(async () => expect((await fetch(`http://127.0.0.1:${port}/mcp`)).status).toBeGreaterThanOrEqual(400), EVENTUALLY)
    await gw.close()
  })
})
