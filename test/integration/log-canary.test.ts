import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { fingerprint } from '../../src/log/index.js'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type Idp } from '../support/idp.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const RESOURCE = 'http://127.0.0.1:4483/mcp'

describe('log canary: no secret reaches the logs, even at trace level', () => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp
  const secrets: string[] = []

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    const introspector = await idp.registerConfidentialClient({ client_name: 'canary-introspection' })
    const exchanger = await idp.registerConfidentialClient({ client_name: 'canary-exchange' })
    const headerValue = `canary-header-${Math.random().toString(36).slice(2)}`
    const backendHeader = `canary-backend-header-${Math.random().toString(36).slice(2)}`
    const apiKey = `canary-api-key-${Math.random().toString(36).slice(2)}`
    const stateKey = `canary-request-state-key-${Math.random().toString(36).slice(2)}-0123456789`
    secrets.push(introspector.client_secret, exchanger.client_secret, headerValue, backendHeader, apiKey, stateKey)
    gw = await startVmcp(
      {
        server: { publicUrl: 'http://127.0.0.1:4483', requestStateKey: { env: 'CANARY_REQUEST_STATE_KEY' } },
        backends: [
          { name: 'keyed', transport: 'streamable-http', url: backend.url },
          { name: 'exchanged', transport: 'streamable-http', url: backend.url },
          // Secret refs in backends[].headers and a multi-header header_injection (issue 9).
          { name: 'multi', transport: 'streamable-http', url: backend.url, headers: { 'X-Test-Header': { env: 'CANARY_BACKEND_HEADER' } } },
        ],
        incomingAuth: {
          type: 'oidc',
          oidc: {
            issuer: idp.issuer,
            audience: RESOURCE,
            resource: RESOURCE,
            introspection: { url: idp.metadata.introspection_endpoint, clientId: introspector.client_id, clientSecret: { env: 'CANARY_INTROSPECTION' } },
          },
        },
        outgoingAuth: {
          backends: {
            keyed: { type: 'header_injection', headerInjection: { headerName: 'X-Canary', value: { env: 'CANARY_HEADER' } } },
            multi: {
              type: 'header_injection',
              headerInjection: { headers: { 'X-API-Key': { env: 'CANARY_API_KEY' }, 'X-Other': { env: 'CANARY_HEADER', prefix: 'Key ' } } },
            },
            exchanged: {
              type: 'token_exchange',
              tokenExchange: { tokenUrl: idp.metadata.token_endpoint, clientId: exchanger.client_id, clientSecret: { env: 'CANARY_EXCHANGE' }, audience: 'backend-api' },
            },
          },
        },
      },
      {
        level: 'trace',
        env: {
          CANARY_INTROSPECTION: introspector.client_secret,
          CANARY_EXCHANGE: exchanger.client_secret,
          CANARY_HEADER: headerValue,
          CANARY_BACKEND_HEADER: backendHeader,
          CANARY_API_KEY: apiKey,
          CANARY_REQUEST_STATE_KEY: stateKey,
        },
      },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('runs JWT, introspection, header injection and token exchange flows and logs none of their secrets', async () => {
    const jwt = await idp.getAccessToken({ resource: RESOURCE })
    const opaqueClient = await idp.registerClient({ token_endpoint_auth_method: 'none' })
    idp.opaqueClients.add(opaqueClient.client_id)
    const opaque = await idp.getAccessToken({ client: opaqueClient, resource: RESOURCE })
    expect(opaque.access_token.split('.')).toHaveLength(1)
    secrets.push(jwt.access_token, opaque.access_token)
    for (const t of [jwt.refresh_token, jwt.id_token, opaque.refresh_token]) if (t) secrets.push(t)

    const a = await connectClient(gw.url, { token: jwt.access_token })
    const exchanged = JSON.parse(await callText(a, 'exchanged_whoami')) as { authorization: string }
    secrets.push(exchanged.authorization.replace(/^Bearer /, ''))
    await callText(a, 'keyed_whoami')
    // Not vacuous: the header secrets were sent.
    const multi = JSON.parse(await callText(a, 'multi_whoami')) as Record<string, string>
    expect(multi['x-api-key']).toBe(secrets[4])
    expect(multi['x-test-header']).toBe(secrets[3])
    await a.close()
    const b = await connectClient(gw.url, { token: opaque.access_token })
    await b.listTools()
    await b.close()
    // Mcp-Session-Id is a bearer credential for its session: created, used, closed, and in the
    // access line of each request, only its fingerprint may be logged.
    const sessionId = await openSession(gw.url, jwt.access_token)
    secrets.push(sessionId)
    const sessionHeaders = { authorization: `Bearer ${jwt.access_token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' }
    // A 2026-07-28 version header on this 2025 session is answered as 2025 and logged (warn) once.
    const list = await fetch(gw.url, {
      method: 'POST',
      headers: { ...sessionHeaders, 'mcp-protocol-version': '2026-07-28', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
    })
    expect(list.status).toBe(200)
    await list.text()
    expect((await fetch(gw.url, { method: 'DELETE', headers: sessionHeaders })).status).toBe(200)
    const sessionLines = gw.logs.filter((l) => l.includes(fingerprint(sessionId)))
    expect(sessionLines.some((l) => l.includes('"msg":"session created"'))).toBe(true)
    expect(sessionLines.some((l) => l.includes('"msg":"session closed"'))).toBe(true)
    expect(sessionLines.some((l) => l.includes('"level":40') && l.includes('2026-07-28'))).toBe(true)
    expect(sessionLines.filter((l) => l.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(2)

    // A rejected token is logged too (by fingerprint): it must not appear either.
    const bad = `${jwt.access_token.slice(0, -4)}AAAA`
    secrets.push(bad)
    await fetch(gw.url, { method: 'POST', headers: { authorization: `Bearer ${bad}`, 'content-type': 'application/json' }, body: '{}' })

    const text = gw.logs.join('\n')
    expect(gw.logs.length).toBeGreaterThan(20)
    // Not vacuous: the shared requestState key was configured and used (its source only logged).
    expect(gw.logs.some((l) => l.includes('"msg":"requestState key"') && l.includes('server.requestStateKey'))).toBe(true)
    expect(text).toContain('"level":10')
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8)
      expect(text).not.toContain(secret)
      // Tokens are JWTs: no part of one (header, payload, signature) may leak either.
      for (const part of secret.split('.')) if (part.length > 16) expect(text).not.toContain(part)
    }
  })
})

/** A raw initialize; returns the Mcp-Session-Id vmcp assigned. */
async function openSession(url: string, token?: string): Promise<string> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'canary', version: '1' } },
    }),
  })
  expect(res.status).toBe(200)
  await res.text()
  const sessionId = res.headers.get('mcp-session-id') ?? ''
  expect(sessionId.length).toBeGreaterThan(8)
  return sessionId
}

describe('log canary: an expired session is logged by fingerprint', () => {
  let gw: RunningVmcp

  beforeAll(async () => {
    gw = await startVmcp({ backends: [], operational: { sessionTtl: '1s' } }, { level: 'trace' })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('logs "session expired" (info) with the fingerprint, never the id', async () => {
    const sessionId = await openSession(gw.url)
    await vi.waitFor(() => expect(gw.logs.some((l) => l.includes('"msg":"session expired"'))).toBe(true), {
      timeout: 20_000,
      interval: 200,
    })
    const expired = gw.logs.find((l) => l.includes('"msg":"session expired"')) ?? ''
    expect(JSON.parse(expired)).toMatchObject({ level: 30, session: fingerprint(sessionId) })
    expect(gw.logs.join('\n')).not.toContain(sessionId)
  })
})
