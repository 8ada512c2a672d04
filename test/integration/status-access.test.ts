import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type Idp } from '../support/idp.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const PUBLIC = 'http://127.0.0.1:4483'
const RESOURCE = `${PUBLIC}/mcp`
const REMOTE_PEER = '198.51.100.23'

/**
 * A request as the app sees it from a TCP peer that is not this host. Every test here runs on
 * loopback, so the Node socket the app reads the peer from (@hono/node-server's `env.incoming`)
 * is the one thing supplied by hand; the app, authenticator and IdP are the real ones.
 */
async function fromRemotePeer(gw: RunningVmcp, path: string, headers: Record<string, string> = {}) {
  const app = gw.vmcp.app
  if (!app) throw new Error('vmcp not started')
  return app.fetch(new Request(`${gw.base}${path}`, { headers }), {
    incoming: { socket: { remoteAddress: REMOTE_PEER } },
  })
}

interface StatusBody {
  name: string
  backends: Array<{ name: string }>
}

async function expectStatus(res: Response, backend: string, path = '/status') {
  expect(res.status).toBe(200)
  if (path === '/metrics') {
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await res.text()).toContain(`vmcp_backend_up{backend="${backend}"} 1`)
    return
  }
  const body = (await res.json()) as StatusBody
  expect(body.backends.map((b) => b.name)).toContain(backend)
}

/** RFC 6750 §3: the same challenge /mcp gives, and nothing about the backends. */
async function expectChallenge(res: Response, prmUrl: string, error?: string) {
  expect(res.status).toBe(401)
  const challenge = res.headers.get('www-authenticate') ?? ''
  expect(challenge.startsWith(`Bearer resource_metadata="${prmUrl}"`)).toBe(true)
  if (error) expect(challenge).toContain(`error="${error}"`)
  else expect(challenge).not.toContain('error=')
  const text = await res.text()
  expect(text).not.toContain('backends')
  expect(text).not.toContain('vmcp_')
}

/** /health and /readyz answer anyone, with their status and nothing else. */
async function expectBareProbes(gw: RunningVmcp) {
  for (const [path, body] of [
    ['/health', '{"status":"ok"}'],
    ['/readyz', '{"status":"ready"}'],
  ] as const) {
    const res = await fromRemotePeer(gw, path)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe(body)
    expect([...res.headers.keys()].sort()).toEqual(['content-type'])
  }
}

// /metrics names the backends and their health too: the same callers as /status may read it.
describe.each(['/status', '/metrics'])('%s in Mode A: a valid bearer token or a loopback peer', (path) => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp
  const PRM_URL = `${PUBLIC}/.well-known/oauth-protected-resource/mcp`

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    gw = await startVmcp({
      server: { publicUrl: PUBLIC },
      backends: [{ name: 'secretive', transport: 'streamable-http', url: backend.url }],
      incomingAuth: {
        type: 'oidc',
        oidc: { issuer: idp.issuer, audience: RESOURCE, resource: RESOURCE, scopes: ['openid', 'mcp'] },
      },
    })
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('answers a loopback peer (a real socket on 127.0.0.1) without a token', async () => {
    await expectStatus(await fetch(`${gw.base}${path}`), 'secretive', path)
  })

  it('RFC 6750 §3.1: a remote peer without a token gets 401 and the Bearer challenge', async () => {
    await expectChallenge(await fromRemotePeer(gw, path), PRM_URL)
  })

  it('the peer is the socket address: forwarding headers naming loopback change nothing', async () => {
    for (const headers of <Array<Record<string, string>>>[
      { 'x-forwarded-for': '127.0.0.1' },
      { forwarded: 'for=127.0.0.1' },
      { 'x-real-ip': '127.0.0.1' },
    ]) {
      await expectChallenge(await fromRemotePeer(gw, path, headers), PRM_URL)
    }
  })

  it('a loopback peer relaying for someone else (a local reverse proxy) needs a token too', async () => {
    for (const headers of <Array<Record<string, string>>>[
      { 'x-forwarded-for': '203.0.113.9' },
      { forwarded: 'for=203.0.113.9' },
      { 'x-real-ip': '203.0.113.9' },
    ]) {
      await expectChallenge(await fetch(`${gw.base}${path}`, { headers }), PRM_URL)
    }
  })

  it('answers a remote peer with a valid token; an invalid one is 401 invalid_token', async () => {
    const { access_token } = await idp.getAccessToken({ resource: RESOURCE })
    await expectStatus(await fromRemotePeer(gw, path, { authorization: `Bearer ${access_token}` }), 'secretive', path)
    const other = await idp.getAccessToken({ resource: 'https://other.example/mcp' })
    await expectChallenge(
      await fromRemotePeer(gw, path, { authorization: `Bearer ${other.access_token}` }),
      PRM_URL,
      'invalid_token',
    )
  })

  it('/health and /readyz stay open and reveal nothing beyond their status', async () => {
    await expectBareProbes(gw)
  })
})

describe('/status in Mode B: vmcp’s own token or a loopback peer', () => {
  let stack: ModeBStack

  beforeAll(async () => {
    stack = await startModeBStack()
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('401 for a remote peer without a token, 200 with vmcp’s own access token or from loopback', async () => {
    const { gw, issuer } = stack
    await expectChallenge(await fromRemotePeer(gw, '/status'), `${issuer}/.well-known/oauth-protected-resource/mcp`)
    const { client, provider } = await connectWithOAuth(gw.url)
    await client.close()
    const token = provider.tokens()?.access_token ?? ''
    await expectStatus(await fromRemotePeer(gw, '/status', { authorization: `Bearer ${token}` }), 'corpapi')
    await expectStatus(await fetch(`${gw.base}/status`), 'corpapi')
    await expectChallenge(await fromRemotePeer(gw, '/metrics'), `${issuer}/.well-known/oauth-protected-resource/mcp`)
    await expectStatus(await fromRemotePeer(gw, '/metrics', { authorization: `Bearer ${token}` }), 'corpapi', '/metrics')
    // The sign-in was one authorization_code grant: counted, by grant type.
    const metrics = await (await fetch(`${gw.base}/metrics`)).text()
    expect(metrics).toContain('vmcp_authserver_tokens_issued_total{grant_type="authorization_code"} 1')
    await expectBareProbes(gw)
  })
})

describe('/status with anonymous incoming auth', () => {
  let backend: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    backend = await startTestBackend(['--name', 'b'])
    gw = await startVmcp({ backends: [{ name: 'open', transport: 'streamable-http', url: backend.url }] })
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
  })

  it('answers anyone, as before', async () => {
    await expectStatus(await fromRemotePeer(gw, '/status'), 'open')
    await expectStatus(await fetch(`${gw.base}/status`), 'open')
  })
})
