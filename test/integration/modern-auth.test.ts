import { SdkHttpError } from '@modelcontextprotocol/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type Idp } from '../support/idp.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { callTextV2, connectV2, postModern } from '../support/modern.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const PUBLIC = 'http://127.0.0.1:4483'
const RESOURCE = `${PUBLIC}/mcp`
const PRM_URL = `${PUBLIC}/.well-known/oauth-protected-resource/mcp`

describe('Mode A authorization applies to 2026-07-28 requests exactly as to 2025 ones', () => {
  let idp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    idp = await startIdp()
    backend = await startTestBackend(['--name', 'b'])
    gw = await startVmcp(
      {
        server: { publicUrl: PUBLIC },
        backends: [
          { name: 'plain', transport: 'streamable-http', url: backend.url },
          { name: 'keyed', transport: 'streamable-http', url: backend.url },
        ],
        incomingAuth: {
          type: 'oidc',
          oidc: {
            issuer: idp.issuer,
            audience: RESOURCE,
            resource: RESOURCE,
            scopes: ['openid', 'mcp'],
            requiredScopes: ['mcp'],
          },
        },
        outgoingAuth: {
          backends: {
            keyed: {
              type: 'header_injection',
              headerInjection: { headerName: 'X-API-Key', value: { env: 'BACKEND_KEY' } },
            },
          },
        },
      },
      { env: { BACKEND_KEY: 'k-123' } },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await idp?.close()
  })

  it('RFC 6750 §3.1 / RFC 9728 §5.1: a modern request without a token gets the same 401 challenge as a 2025 one', async () => {
    const modern = await fetch(gw.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'server/discover',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'server/discover',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
      }),
    })
    const legacy = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    })
    expect(modern.status).toBe(401)
    expect(modern.headers.get('www-authenticate')).toBe(legacy.headers.get('www-authenticate'))
    expect(modern.headers.get('www-authenticate')).toMatch(
      new RegExp(`^Bearer resource_metadata="${PRM_URL}"`),
    )
    expect(await modern.text()).toBe(await legacy.text())
  })

  it('an auto-negotiating v2 client without a token fails on the 401, never falls back to 2025', async () => {
    const err = await connectV2(gw.url, 'auto').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SdkHttpError)
    expect((err as SdkHttpError).status).toBe(401)
  })

  it('a modern caller with a valid token reaches backends with their own credentials, never its token', async () => {
    const { access_token } = await idp.getAccessToken({ resource: RESOURCE })
    const client = await connectV2(gw.url, 'auto', { token: access_token })
    expect(client.getProtocolEra()).toBe('modern')
    const keyed = JSON.parse(await callTextV2(client, 'keyed_whoami')) as Record<
      string,
      string | null
    >
    expect(keyed['x-api-key']).toBe('k-123')
    expect(keyed.authorization).toBeNull()
    const plain = JSON.parse(await callTextV2(client, 'plain_whoami')) as Record<
      string,
      string | null
    >
    expect(plain.authorization).toBeNull()
    await client.close()
  })

  it('a requestState issued to one user is refused for another, and the held call stays theirs', async () => {
    const alice = await idp.mintAccessToken({ aud: RESOURCE, sub: 'alice' })
    const mallory = await idp.mintAccessToken({ aud: RESOURCE, sub: 'mallory' })
    const caps = { elicitation: { form: {} } }
    const call = (token: string, extra: Record<string, unknown> = {}) =>
      postModern(
        gw.url,
        'tools/call',
        { name: 'plain_ask_user', arguments: { question: 'pin?' }, ...extra },
        { authorization: `Bearer ${token}`, 'mcp-name': 'plain_ask_user' },
        caps,
      )
    const asked = (await call(alice)).body.result as {
      resultType: string
      inputRequests: Record<string, unknown>
      requestState: string
    }
    expect(asked.resultType).toBe('input_required')
    const key = Object.keys(asked.inputRequests)[0] as string
    const answer = (content: Record<string, unknown>) => ({
      inputResponses: { [key]: { action: 'accept', content } },
      requestState: asked.requestState,
    })
    const stolen = await call(mallory, answer({ answer: 'mallory was here' }))
    expect(stolen.body.error).toMatchObject({
      code: -32602,
      message: 'requestState was issued to another caller',
    })
    const own = await call(alice, answer({ answer: '1234' }))
    expect(JSON.stringify(own.body.result)).toContain('answer: 1234')
  })

  it('RFC 6750 §3.1: a modern request with a bad token is 401 invalid_token', async () => {
    const forged = await idp.mintAccessToken({ aud: 'https://other.example/mcp' })
    const res = await postModern(
      gw.url,
      'tools/list',
      {},
      { authorization: `Bearer ${forged}` },
    ).catch(() => undefined)
    expect(res?.status).toBe(401)
  })
})

describe('Mode B: vmcp-issued tokens and per-user backends serve 2026-07-28 callers too', () => {
  let stack: ModeBStack

  beforeAll(async () => {
    stack = await startModeBStack()
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('a modern caller with a Mode B token reaches each upstream_inject backend with its own upstream token', async () => {
    const { client: signedIn, provider } = await connectWithOAuth(stack.gw.url)
    const token = provider.tokens()?.access_token ?? ''
    // What a 2025 session sends each backend, for comparison.
    const legacyCorp = JSON.parse(await callText(signedIn, 'corpapi_whoami')) as {
      authorization: string
    }
    await signedIn.close()

    const client = await connectV2(stack.gw.url, 'auto', { token })
    expect(client.getProtocolEra()).toBe('modern')
    const names = (await client.listTools()).tools.map((t) => t.name)
    expect(names).toEqual(expect.arrayContaining(['corpapi_whoami', 'partnerapi_whoami']))
    const corp = JSON.parse(await callTextV2(client, 'corpapi_whoami')) as { authorization: string }
    const partner = JSON.parse(await callTextV2(client, 'partnerapi_whoami')) as {
      authorization: string
    }
    expect(corp.authorization).toBe(legacyCorp.authorization)
    expect(corp.authorization).not.toBe(`Bearer ${token}`)
    expect(partner.authorization).not.toBe(corp.authorization)
    expect(
      (await stack.partner.introspect(partner.authorization.replace(/^Bearer /, ''))).active,
    ).toBe(true)
    await client.close()
  })

  it("a per-user backend's list change reaches its user's subscriptions/listen stream", async () => {
    const { client: signedIn, provider } = await connectWithOAuth(stack.gw.url)
    const token = provider.tokens()?.access_token ?? ''
    await signedIn.close()
    const client = await connectV2(stack.gw.url, 'auto', { token })
    let changed = 0
    client.setNotificationHandler('notifications/tools/list_changed', async () => {
      changed++
    })
    const sub = await client.listen({ toolsListChanged: true })
    expect(sub.honoredFilter).toEqual({ toolsListChanged: true })
    // corpapi is upstream_inject: its catalog is this user's, not in the shared view.
    expect(await callTextV2(client, 'corpapi_add_tool', { name: 'modern_listen' })).toBe('added')
    await vi.waitFor(() => expect(changed).toBeGreaterThan(0), { timeout: 15_000, interval: 50 })
    await vi.waitFor(
      async () =>
        expect((await client.listTools()).tools.map((t) => t.name)).toContain(
          'corpapi_modern_listen',
        ),
      { timeout: 15_000, interval: 100 },
    )
    expect(await callTextV2(client, 'corpapi_remove_tool', { name: 'modern_listen' })).toBe(
      'removed',
    )
    await sub.close()
    await client.close()
  })

  it('RFC 9728 §5.1: a modern request without a token gets the Mode B challenge, as a 2025 one does', async () => {
    const post = (headers: Record<string, string>, body: unknown) =>
      fetch(stack.gw.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify(body),
      })
    const modern = await post(
      { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'server/discover' },
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'server/discover',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
      },
    )
    const legacy = await post({}, { jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(modern.status).toBe(401)
    expect(modern.headers.get('www-authenticate')).toBe(legacy.headers.get('www-authenticate'))
    expect(modern.headers.get('www-authenticate')).toContain(
      `resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/mcp"`,
    )
  })
})
