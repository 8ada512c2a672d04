import { get } from 'node:http'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { fingerprint } from '../../src/log/index.js'
import { TEST_BACKEND } from '../support/backends.js'
import { EVENTUALLY } from '../support/wait.js'
import { connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
}
const ACCEPT = 'application/json, text/event-stream'
const STDIO_BACKEND = { name: 'a', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio'] }

describe('HTTP rules of /mcp', () => {
  let gw: RunningVmcp

  const send = (init: RequestInit & { headers?: Record<string, string> }, url = gw.url) =>
    fetch(url, {
      method: 'POST',
      ...init,
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...init.headers },
    })
  const expectRpcError = async (res: Response, status: number, code: number, message: RegExp) => {
    expect(res.status).toBe(status)
    const body = (await res.json()) as { jsonrpc: string; error: { code: number; message: string }; id: null }
    expect(body.jsonrpc).toBe('2.0')
    expect(body.id).toBeNull()
    expect(body.error.code).toBe(code)
    expect(body.error.message).toMatch(message)
  }
  const initialize = async (url = gw.url) => {
    const res = await send({ body: JSON.stringify(INIT) }, url)
    expect(res.status).toBe(200)
    await res.body?.cancel()
    return res.headers.get('mcp-session-id') as string
  }

  beforeAll(async () => {
    gw = await startVmcp({
      server: { maxBodyBytes: 4096, allowedOrigins: ['https://app.example.com'] },
      backends: [STDIO_BACKEND],
    })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('400 when a non-initialize request has no Mcp-Session-Id', async () => {
    const res = await send({ body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })
    await expectRpcError(res, 400, -32000, /Mcp-Session-Id header is required/)
  })

  it('404 for an unknown session id', async () => {
    const res = await send({
      headers: { 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    await expectRpcError(res, 404, -32001, /Session not found/)
  })

  it('413 for a body over server.maxBodyBytes, declared or streamed', async () => {
    const big = JSON.stringify({ ...INIT, params: { ...INIT.params, pad: 'x'.repeat(5000) } })
    await expectRpcError(await send({ body: big }), 413, -32000, /exceeds 4096 bytes/)
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big))
        c.close()
      },
    })
    await expectRpcError(await send({ body: chunked, duplex: 'half' } as { body: ReadableStream }), 413, -32000, /exceeds/)
    expect(gw.vmcp.gateway.status().sessions).toBe(0)
  })

  it('-32700 for a body that is not JSON; -32600-range error for JSON that is not JSON-RPC', async () => {
    await expectRpcError(await send({ body: '{"jsonrpc": "2.0", ' }), 400, -32700, /Parse error/)
    const sid = await initialize()
    const res = await send({
      headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ hello: 'world' }),
    })
    expect(res.status).toBe(400)
    const body = (await res.json()) as { error: { code: number } }
    expect(body.error.code).toBeLessThanOrEqual(-32600)
  })

  it('403 for a foreign Origin (DNS rebinding); loopback and configured origins pass', async () => {
    await expectRpcError(
      await send({ headers: { origin: 'https://evil.example' }, body: JSON.stringify(INIT) }),
      403,
      -32000,
      /Origin not allowed/,
    )
    for (const origin of ['http://localhost:6274', 'https://app.example.com']) {
      const ok = await send({ headers: { origin }, body: JSON.stringify(INIT) })
      expect(ok.status).toBe(200)
      expect(ok.headers.get('access-control-allow-origin')).toBe(origin)
      await ok.body?.cancel()
    }
  })

  it('403 for a Host header that is not this server (rebinding to a loopback bind)', async () => {
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(gw.url, { method: 'POST', headers: { host: 'attacker.example:80', 'content-type': 'application/json', accept: ACCEPT } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.end(JSON.stringify(INIT))
    })
    expect(status).toBe(403)
  })

  it('answers CORS preflight for browser clients', async () => {
    const res = await fetch(gw.url, { method: 'OPTIONS', headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST' } })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-headers')).toContain('Mcp-Session-Id')
    expect(res.headers.get('access-control-expose-headers')).toContain('Mcp-Session-Id')
  })

  it('405 for other methods', async () => {
    const res = await fetch(gw.url, { method: 'PUT' })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, POST, DELETE')
  })

  it('DELETE ends a session; the id is then unknown', async () => {
    const sid = await initialize()
    const del = await fetch(gw.url, { method: 'DELETE', headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } })
    expect(del.status).toBe(200)
    const res = await send({ headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) })
    expect(res.status).toBe(404)
  })

  it('expires idle sessions after operational.sessionTtl', async () => {
    // Its own vmcp: a 1 s TTL would expire the other tests' sessions on a loaded machine.
    const short = await startVmcp({ backends: [STDIO_BACKEND], operational: { sessionTtl: '1s' } })
    try {
      const sid = await initialize(short.url)
      // Watch the log, not the session: any request would count as activity and keep it alive.
      await vi.waitFor(
        () => expect(short.logs.some((l) => l.includes('session expired') && l.includes(fingerprint(sid)))).toBe(true),
        EVENTUALLY,
      )
      const res = await send(
        {
          headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
        },
        short.url,
      )
      expect(res.status).toBe(404)
    } finally {
      await short.close()
    }
  })

  it('serves /health, /readyz and /status as JSON', async () => {
    expect(await (await fetch(`${gw.base}/health`)).json()).toEqual({ status: 'ok' })
    expect(await (await fetch(`${gw.base}/readyz`)).json()).toEqual({ status: 'ready' })
    const status = (await (await fetch(`${gw.base}/status`)).json()) as Record<string, unknown>
    expect(status).toMatchObject({ ready: true, healthy: 1, backends: [{ name: 'a', transport: 'stdio', health: 'healthy' }] })
    const missing = await fetch(`${gw.base}/nope`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ error: 'not_found' })
  })
})

describe('graceful shutdown', () => {
  it('closes open client streams and backends, and stops listening', async () => {
    const gw = await startVmcp({
      backends: [STDIO_BACKEND],
    })
    const client = await connectClient(gw.url)
    let closed = false
    client.onclose = () => {
      closed = true
    }
    await client.listTools()
    await gw.close()
    await expect(fetch(`${gw.base}/health`)).rejects.toThrow()
    expect(gw.vmcp.gateway.status().sessions).toBe(0)
    await client.close()
    expect(closed).toBe(true)
  })
})

/** The Keep-Alive header a plain HTTP/1.1 request to `url` is answered with. */
const keepAliveOf = (url: string) =>
  new Promise<string | undefined>((ok, fail) => {
    get(url, (res) => {
      res.resume()
      ok(res.headers['keep-alive'] as string | undefined)
    }).on('error', fail)
  })

describe('idle client connections', () => {
  it("stay open as long as server.keepAliveTimeout says (above a load balancer's idle timeout), 5 s by default", async () => {
    const byDefault = await startVmcp({ backends: [] })
    const configured = await startVmcp({ server: { keepAliveTimeout: '65s' }, backends: [] })
    try {
      expect(await keepAliveOf(new URL('/health', byDefault.url).href)).toBe('timeout=5')
      expect(await keepAliveOf(new URL('/health', configured.url).href)).toBe('timeout=65')
    } finally {
      await byDefault.close()
      await configured.close()
    }
  })
})
