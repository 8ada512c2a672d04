import { readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const CONFIG = new URL('../../fixtures/configs/mode-a.yaml', import.meta.url)
const GOLDEN = new URL('../golden/mode-a.json', import.meta.url)

interface Recorded {
  request: string
  status: number
  headers: Record<string, string>
  body: string
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'golden', version: '1' } },
})
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

// Every Mode A route, with and without credentials. The token is opaque and no introspection is
// configured, so the answer needs no network and is the same on every machine.
const REQUESTS: Array<{ name: string; path: string; init?: RequestInit }> = [
  { name: 'POST /mcp initialize, no token', path: '/mcp', init: { method: 'POST', headers: MCP_HEADERS, body: INIT } },
  {
    name: 'POST /mcp initialize, opaque token',
    path: '/mcp',
    init: { method: 'POST', headers: { ...MCP_HEADERS, authorization: 'Bearer opaque-token-value' }, body: INIT },
  },
  { name: 'GET /mcp, no token', path: '/mcp', init: { headers: { accept: 'text/event-stream' } } },
  { name: 'GET /health', path: '/health' },
  { name: 'GET /readyz', path: '/readyz' },
  { name: 'GET /status', path: '/status' },
  { name: 'GET /.well-known/oauth-protected-resource', path: '/.well-known/oauth-protected-resource' },
  { name: 'GET /.well-known/oauth-protected-resource/mcp', path: '/.well-known/oauth-protected-resource/mcp' },
  { name: 'OPTIONS /.well-known/oauth-protected-resource/mcp', path: '/.well-known/oauth-protected-resource/mcp', init: { method: 'OPTIONS' } },
  { name: 'GET /.well-known/oauth-authorization-server', path: '/.well-known/oauth-authorization-server' },
  { name: 'GET /.well-known/openid-configuration', path: '/.well-known/openid-configuration' },
  { name: 'GET /.well-known/jwks.json', path: '/.well-known/jwks.json' },
  { name: 'GET /oauth/authorize', path: '/oauth/authorize?response_type=code&client_id=x' },
  { name: 'POST /oauth/token', path: '/oauth/token', init: { method: 'POST', body: 'grant_type=authorization_code' } },
  { name: 'POST /oauth/register', path: '/oauth/register', init: { method: 'POST', body: '{}' } },
]

describe('golden recording of Mode A (fixtures/configs/mode-a.yaml)', () => {
  let gw: RunningVmcp
  beforeAll(async () => {
    gw = await startVmcp(readFileSync(CONFIG, 'utf8').replace(/^(\s*)port:.*$/m, '$1port: 0'), {
      baseDir: new URL('.', CONFIG).pathname,
    })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('answers every route exactly as recorded', async () => {
    const recorded: Recorded[] = []
    for (const r of REQUESTS) {
      const res = await fetch(`${gw.base}${r.path}`, r.init)
      const headers: Record<string, string> = {}
      res.headers.forEach((v, k) => {
        if (k !== 'date') headers[k] = v
      })
      recorded.push({ request: r.name, status: res.status, headers, body: await res.text() })
    }
    if (process.env.UPDATE_GOLDEN === '1') {
      writeFileSync(GOLDEN, JSON.stringify(recorded, null, 2) + '\n')
    }
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Recorded[]
    expect(recorded).toEqual(golden)
  })
})
