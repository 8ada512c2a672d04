import { request as rawRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startHttpBackend, type RunningBackend } from '../support/backends.js'
import { callTextV2, connectV2, MODERN_BACKEND, postModern } from '../support/modern.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

// SEP-2243 (MCP 2026-07-28 §Custom Headers): the fixture's test_custom_header marks `region`
// with `x-mcp-header: Region`. vmcp shows the marking, checks the caller's Mcp-Param-Region
// against the body, and sends the backend (which checks it too) its own, derived from the body.
const TOOL = 'mono_test_custom_header'
const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`

describe('Mcp-Param-* headers through vmcp (SEP-2243)', () => {
  let mono: RunningBackend
  let raw: RunningVmcp
  let sdk: RunningVmcp

  beforeAll(async () => {
    mono = await startHttpBackend(MODERN_BACKEND, [
      '--name',
      'mono',
      '--legacy',
      'reject',
      '--conformance',
    ])
    const config = { backends: [{ name: 'mono', transport: 'streamable-http', url: mono.url }] }
    ;[raw, sdk] = await Promise.all([startVmcp(config), startVmcp(config, { relay: false })])
  })
  afterAll(async () => {
    await Promise.allSettled([raw?.close(), sdk?.close()])
    await mono?.close()
  })

  const call = (url: string, region: unknown, headers: Record<string, string>, caps = {}) =>
    postModern(url, 'tools/call', { name: TOOL, arguments: { region } }, { 'mcp-name': TOOL, ...headers }, caps)
  const backendRequests = async () => Number(await callTextV2(await client(raw.url), 'mono_count'))
  const clients: Array<Awaited<ReturnType<typeof connectV2>>> = []
  const client = async (url: string) => {
    const c = await connectV2(url, { pin: '2026-07-28' })
    clients.push(c)
    return c
  }
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()))
  })

  it('shows the marking and serves v2 clients that mirror the argument, on both paths', async () => {
    const listed = (await (await client(raw.url)).listTools()).tools.find((t) => t.name === TOOL)
    expect(listed?.inputSchema.properties?.region).toEqual({ type: 'string', 'x-mcp-header': 'Region' })
    for (const vmcp of [raw, sdk]) {
      // 'é x' is not a plain header value: the client sends it Base64-encoded, and so does vmcp.
      expect(await callTextV2(await client(vmcp.url), TOOL, { region: 'é x' })).toBe('region: é x')
      expect(await callTextV2(await client(vmcp.url), TOOL, { region: 'eu' })).toBe('region: eu')
    }
    // A caller that may be asked for input takes the v2 client to the backend: headers there too.
    const res = await call(sdk.url, 'é x', { 'mcp-param-region': b64('é x') }, { elicitation: {} })
    expect(res.status).toBe(200)
    expect(JSON.stringify(res.body)).toContain('region: é x')
  })

  it('refuses a header that disagrees with the body, is missing, or is malformed, before the backend', async () => {
    const before = await backendRequests()
    const refused: Array<[unknown, Record<string, string>]> = [
      ['eu', { 'mcp-param-region': 'us' }],
      ['eu', {}],
      ['eu', { 'mcp-param-region': b64('us') }],
      ['Hello', { 'mcp-param-region': '=?base64?SGVsbG8?=' }], // padding missing
      ['Hello', { 'mcp-param-region': '=?base64?SGVs!!!bG8=?=' }], // outside the alphabet
      ['\u00ff', { 'mcp-param-region': '=?base64?/w==?=' }], // not UTF-8
    ]
    for (const vmcp of [raw, sdk]) {
      for (const [region, headers] of refused) {
        const res = await call(vmcp.url, region, headers)
        expect({ region, headers, status: res.status }).toEqual({ region, headers, status: 400 })
        expect(res.body).toMatchObject({
          jsonrpc: '2.0',
          id: 1,
          error: { code: -32020, data: { mismatch: { header: 'Mcp-Param-Region' } } },
        })
      }
    }
    // Only the count calls themselves reached the backend.
    expect(await backendRequests()).toBe(before + 1)
  })

  it('reads a value outside the plain form only in Base64, never as raw bytes', async () => {
    for (const vmcp of [raw, sdk]) {
      // Latin-1 bytes on the wire (obs-text): no plain value may carry them.
      const { status, body } = await rawPost(vmcp.url, 'éu', 'é'.replace('é', '\xe9') + 'u')
      expect(status).toBe(400)
      expect(body).toContain('-32020')
    }
  })

  it('passes CR/LF in an argument on Base64-encoded, so nothing is injected into headers', async () => {
    const region = 'eu\r\nX-Injected: 1'
    for (const vmcp of [raw, sdk]) {
      const res = await call(vmcp.url, region, { 'mcp-param-region': b64(region) })
      expect(res.status).toBe(200)
      expect(JSON.stringify(res.body)).toContain(JSON.stringify(`region: ${region}`).slice(1, -1))
    }
  })

  it('ignores Mcp-Param headers a tool does not mark, and answers oversized ones without harm', async () => {
    const echo = await postModern(
      raw.url,
      'tools/call',
      { name: 'mono_echo', arguments: { text: 'hi' } },
      { 'mcp-name': 'mono_echo', 'mcp-param-text': 'other' },
    )
    expect(echo.status).toBe(200)
    expect(JSON.stringify(echo.body)).toContain('mono: hi')
    const huge = 'x'.repeat(64 * 1024)
    const res = await fetch(raw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'mcp-param-region': huge },
      body: '{}',
    })
    expect(res.status).toBe(431)
    expect(await callTextV2(await client(raw.url), TOOL, { region: 'eu' })).toBe('region: eu')
  })
})

/** A tools/call whose Mcp-Param-Region header is written as these latin1 bytes. */
function rawPost(url: string, region: string, headerLatin1: string): Promise<{ status: number; body: string }> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: {
      name: TOOL,
      arguments: { region },
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  })
  return new Promise((resolve, reject) => {
    const req = rawRequest(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': TOOL,
        'mcp-param-region': Buffer.from(headerLatin1, 'latin1').toString('latin1'),
      },
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}
