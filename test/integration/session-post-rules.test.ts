import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type Idp } from '../support/idp.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const RESOURCE = 'https://vmcp.test/mcp'
const ACCEPT = 'application/json, text/event-stream'
const VERSION = '2025-11-25'
const CALL = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'b_echo', arguments: { text: 'hi' } } }

/**
 * POSTs on an established session (tools/call and friends) are served by the Node fast path
 * (src/server/mcp-post.ts), not by the Hono route: every HTTP rule of /mcp must hold there too.
 */
describe('HTTP rules of /mcp on a session POST (tools/call)', () => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp
  let token: string
  let sessionId: string

  const post = (body: string | ReadableStream, headers: Record<string, string | undefined> = {}) => {
    const all: Record<string, string> = {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': VERSION,
    }
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) delete all[k]
      else all[k] = v
    }
    return fetch(gw.url, { method: 'POST', headers: all, body, ...(typeof body === 'string' ? {} : { duplex: 'half' }) } as RequestInit)
  }
  const expectRpcError = async (res: Response, status: number, code: number, message: RegExp) => {
    expect(res.status).toBe(status)
    const body = (await res.json()) as { jsonrpc: string; error: { code: number; message: string }; id: null }
    expect(body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code } })
    expect(body.error.message).toMatch(message)
  }

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    gw = await startVmcp(
      {
        server: { maxBodyBytes: 4096, allowedOrigins: ['https://app.example.com'] },
        backends: [{ name: 'b', transport: 'streamable-http', url: backend.url }],
        incomingAuth: {
          type: 'oidc',
          oidc: { issuer: idp.issuer, audience: RESOURCE, resource: RESOURCE, scopes: ['openid', 'mcp'] },
        },
      },
      { level: 'info' },
    )
    token = await idp.mintAccessToken({ aud: RESOURCE, sub: 'alice' })
    const init = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, authorization: `Bearer ${token}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    })
    expect(init.status).toBe(200)
    await init.body?.cancel()
    sessionId = init.headers.get('mcp-session-id') as string
    const ack = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))
    expect(ack.status).toBe(202)
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('answers a tools/call with one JSON reply, with CORS for an allowed Origin, and logs it', async () => {
    const res = await post(JSON.stringify(CALL), { origin: 'https://app.example.com' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(res.headers.get('mcp-session-id')).toBe(sessionId)
    const body = (await res.json()) as { id: number; result: { content: Array<{ text: string }> } }
    expect(body.id).toBe(7)
    expect(body.result.content[0]?.text).toBe('b: hi')
    const line = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.status === 200 && l.session)
    expect(line).toMatchObject({ method: 'POST', path: '/mcp' })
    expect(JSON.stringify(gw.logs)).not.toContain(sessionId)
  })

  it('answers a notification with 202 and CORS for an allowed Origin', async () => {
    const res = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }), {
      origin: 'https://app.example.com',
    })
    expect(res.status).toBe(202)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(res.headers.get('mcp-session-id')).toBe(sessionId)
  })

  it('403 for a foreign Origin (DNS rebinding)', async () => {
    await expectRpcError(await post(JSON.stringify(CALL), { origin: 'https://evil.example' }), 403, -32000, /Origin not allowed/)
  })

  /** node:http, which sends what fetch will not: a foreign Host, a repeated header. */
  const rawPost = (headers: Record<string, string | string[]>) =>
    new Promise<{ status: number; challenge: string }>((resolve, reject) => {
      const req = httpRequest(gw.url, { method: 'POST' }, (res) => {
        res.resume()
        resolve({ status: res.statusCode ?? 0, challenge: String(res.headers['www-authenticate']) })
      })
      const base = { 'content-type': 'application/json', accept: ACCEPT, authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION }
      for (const [k, v] of Object.entries({ ...base, ...headers })) req.setHeader(k, v)
      req.on('error', reject)
      req.end(JSON.stringify(CALL))
    })

  it('403 for a Host that is not this server', async () => {
    expect((await rawPost({ host: 'attacker.example:80' })).status).toBe(403)
  })

  it('RFC 6750 §3.1: no token → 401 with the challenge; a bad token → 401 invalid_token', async () => {
    const missing = await post(JSON.stringify(CALL), { authorization: undefined })
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer resource_metadata="[^"]+", scope="openid mcp"$/)
    await missing.body?.cancel()
    const expired = await post(JSON.stringify(CALL), {
      authorization: `Bearer ${await idp.mintAccessToken({ aud: RESOURCE, sub: 'alice' }, { expiresIn: -300 })}`,
    })
    expect(expired.status).toBe(401)
    expect(expired.headers.get('www-authenticate')).toContain('error="invalid_token"')
    await expired.body?.cancel()
  })

  it('RFC 9110 §5.3: two Authorization fields read as one malformed value, not as the first', async () => {
    const answer = await rawPost({ authorization: [`Bearer ${token}`, 'Bearer other'] })
    expect(answer.status).toBe(401)
    expect(answer.challenge).toContain('error="invalid_request"')
  })

  it('another subject presenting the session id gets 404, as for an unknown session', async () => {
    const bob = await idp.mintAccessToken({ aud: RESOURCE, sub: 'bob' })
    await expectRpcError(await post(JSON.stringify(CALL), { authorization: `Bearer ${bob}` }), 404, -32001, /Session not found/)
  })

  it('serves a tools/call whose body arrives well after its headers, in two parts', async () => {
    // The fast path reads a body that came with its headers in one go; this one is not there
    // when the request is served, so it is read as it comes.
    const body = Buffer.from(JSON.stringify(CALL))
    let req: ReturnType<typeof httpRequest> | undefined
    const answer = new Promise<{ status: number; text: string }>((ok, fail) => {
      req = httpRequest(
        gw.url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': String(body.length),
            accept: ACCEPT,
            authorization: `Bearer ${token}`,
            'mcp-session-id': sessionId,
            'mcp-protocol-version': VERSION,
          },
        },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (text += c))
          res.on('end', () => ok({ status: res.statusCode ?? 0, text }))
        },
      )
      req.on('error', fail)
    })
    const write = (part: Buffer) => new Promise<void>((done, fail) => req!.write(part, (err) => (err ? fail(err) : done())))
    await write(body.subarray(0, 20))
    // Another request answered on another connection: by then vmcp has taken the headers and the
    // first part, and begun serving the call.
    expect((await fetch(new URL('/readyz', gw.url))).status).toBe(200)
    await write(body.subarray(20))
    req!.end()
    const { status, text } = await answer
    expect(status).toBe(200)
    expect(JSON.parse(text)).toMatchObject({ id: 7, result: { content: [{ text: 'b: hi' }] } })
  })

  it('413 for a body over server.maxBodyBytes, declared or streamed', async () => {
    const big = JSON.stringify({ ...CALL, params: { ...CALL.params, arguments: { text: 'x'.repeat(5000) } } })
    await expectRpcError(await post(big), 413, -32000, /exceeds 4096 bytes/)
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big))
        c.close()
      },
    })
    await expectRpcError(await post(chunked), 413, -32000, /exceeds 4096 bytes/)
  })

  it('400 for a body that is not JSON, 415 for another content type, 406 without both accept types', async () => {
    await expectRpcError(await post('{"jsonrpc": "2.0", '), 400, -32700, /Parse error/)
    await expectRpcError(await post(JSON.stringify(CALL), { 'content-type': 'text/plain' }), 415, -32000, /Unsupported Media Type/)
    await expectRpcError(await post(JSON.stringify(CALL), { accept: 'application/json' }), 406, -32000, /Not Acceptable/)
    await expectRpcError(await post(JSON.stringify(CALL), { 'mcp-protocol-version': '1999-01-01' }), 400, -32000, /Unsupported protocol version/)
  })

  it('a batch on the session is still served (by the full path), with its identity checked once', async () => {
    const res = await post(JSON.stringify([CALL]))
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toContain('b: hi')
  })
})
