import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { createMcpHandler, Server } from '@modelcontextprotocol/server'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { readVersion } from '../../src/version.js'
import {
  startHttpBackend,
  startTestBackend,
  TEST_BACKEND,
  type RunningBackend,
} from '../support/backends.js'
import {
  acceptElicitations,
  callTextV2,
  connectV2,
  ERA_MODES,
  expectToolListChangeHeard,
  MODERN_BACKEND,
  postModern,
} from '../support/modern.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

describe('MCP 2026-07-28 beside 2025-11-25 on one /mcp', () => {
  let beta: RunningBackend
  let nova: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
    nova = await startHttpBackend(MODERN_BACKEND, ['--name', 'nova'])
    gw = await startVmcp({
      backends: [
        {
          name: 'alpha',
          transport: 'stdio',
          command: process.execPath,
          args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'],
        },
        { name: 'beta', transport: 'streamable-http', url: beta.url },
        { name: 'nova', transport: 'streamable-http', url: nova.url },
      ],
    })
  })
  afterAll(async () => {
    await gw?.close()
    await Promise.all([beta?.close(), nova?.close()])
  })

  const modes = ERA_MODES
  it.each(modes)(
    'a v2 client in %s mode lists and calls a 2025 stdio, a 2025 HTTP and a 2026 backend',
    async (_, mode, era) => {
      const client = await connectV2(gw.url, mode)
      expect(client.getProtocolEra()).toBe(era)
      const names = (await client.listTools()).tools.map((t) => t.name)
      expect(names).toEqual(expect.arrayContaining(['alpha_echo', 'beta_echo', 'nova_echo']))
      expect(await callTextV2(client, 'alpha_echo', { text: 'a' })).toBe('alpha: a')
      expect(await callTextV2(client, 'beta_echo', { text: 'b' })).toBe('beta: b')
      expect(await callTextV2(client, 'nova_echo', { text: 'n' })).toBe('nova: n')
      await client.close()
    },
  )

  it('answers server/discover with its capabilities and supported versions', async () => {
    const client = await connectV2(gw.url, 'auto')
    const discover = client.getDiscoverResult()
    expect(discover?.supportedVersions).toEqual(['2026-07-28'])
    expect(discover?.capabilities).toMatchObject({
      tools: { listChanged: true },
      prompts: {},
      resources: {},
      completions: {},
    })
    // resourceSubscriptions on subscriptions/listen are fed per URI (MCP 2026-07-28 §Subscriptions).
    expect(discover?.capabilities.resources?.subscribe).toBe(true)
    await client.close()
  })

  it('answers server/discover itself, byte for byte as a v2 Server with its capabilities does', async () => {
    const capabilities = {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      completions: {},
    }
    const sdk = createMcpHandler(
      () => new Server({ name: 'vmcp', version: readVersion() }, { capabilities }),
      { legacy: 'reject' },
    )
    const request = (url: string) =>
      new Request(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'server/discover',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 7,
          method: 'server/discover',
          params: {
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }),
      })
    const bodyOf = async (res: Response) => {
      const text = await res.text()
      return JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? text) as unknown
    }
    const expected = await bodyOf(await sdk.fetch(request('http://127.0.0.1/mcp')))
    await sdk.close()
    expect(expected).toMatchObject({ id: 7, result: { supportedVersions: ['2026-07-28'] } })
    const ours = await fetch(request(gw.url))
    expect(ours.status).toBe(200)
    expect(await bodyOf(ours)).toEqual(expected)
  })

  it('routes resources/read, prompts/get and completion for modern callers', async () => {
    const client = await connectV2(gw.url, 'auto')
    const read = await client.readResource({ uri: 'nova://motd' })
    expect(read.contents[0]).toMatchObject({ text: 'hello from nova' })
    const prompt = await client.getPrompt({ name: 'nova_greet', arguments: { who: 'Ada' } })
    expect(prompt.messages[0]?.content).toMatchObject({ text: 'Say hello to Ada' })
    await expect(client.callTool({ name: 'nope', arguments: {} })).rejects.toThrow(
      /Unknown tool: nope/,
    )
    await client.close()
  })

  it('relays progress on the request stream and cancels the backend call when the stream closes', async () => {
    const client = await connectV2(gw.url, 'auto')
    const progress: number[] = []
    const res = await client.callTool(
      { name: 'beta_slow', arguments: { ms: 50, steps: 3 } },
      { onprogress: (p) => progress.push(p.progress) },
    )
    expect(res.isError).toBeFalsy()
    expect(progress).toEqual([1, 2, 3])

    const before = JSON.parse(await callTextV2(client, 'alpha_stats')) as { cancellations: number }
    const abort = new AbortController()
    const call = client.callTool(
      { name: 'alpha_wait_forever', arguments: {} },
      { signal: abort.signal },
    )
    // The call is in flight at the backend once a second request sees the backend answer.
    await callTextV2(client, 'alpha_echo', { text: 'in flight' })
    abort.abort()
    await expect(call).rejects.toThrow()
    await vi.waitFor(
      async () => {
        const after = JSON.parse(await callTextV2(client, 'alpha_stats')) as {
          cancellations: number
        }
        expect(after.cancellations).toBe(before.cancellations + 1)
      },
      { timeout: 15_000, interval: 100 },
    )
    await client.close()
  })

  it.each(modes)(
    'a v2 client in %s mode answers elicitation from a 2025 stdio, a 2025 HTTP and a 2026 backend',
    async (_, mode, era) => {
      const client = await connectV2(gw.url, mode, { capabilities: { elicitation: { form: {} } } })
      expect(client.getProtocolEra()).toBe(era)
      const asked: string[] = []
      acceptElicitations(client, asked)
      expect(await callTextV2(client, 'alpha_ask_user', { question: 'stdio?' })).toBe('answer: yes')
      expect(await callTextV2(client, 'beta_ask_user', { question: 'http?' })).toBe('answer: yes')
      expect(await callTextV2(client, 'nova_confirm', { action: 'deploy' })).toBe(
        'nova: deploy confirmed',
      )
      expect(asked).toEqual(['stdio?', 'http?', 'deploy?'])
      // A caller that can answer input reaches the 2026-07-28 backend in its own era.
      expect(await callTextV2(client, 'nova_era')).toBe('modern')
      await client.close()
    },
  )

  it('answers the held call on the raw retry, and refuses a replayed or altered requestState', async () => {
    const caps = { elicitation: { form: {} } }
    const first = await postModern(
      gw.url,
      'tools/call',
      { name: 'beta_ask_user', arguments: { question: 'colour?' } },
      { 'mcp-name': 'beta_ask_user' },
      caps,
    )
    const asked = first.body.result as {
      resultType: string
      inputRequests: Record<string, { method: string; params: { message: string } }>
      requestState: string
    }
    expect(asked.resultType).toBe('input_required')
    const [key, request] = Object.entries(asked.inputRequests)[0] ?? []
    expect(request).toMatchObject({ method: 'elicitation/create', params: { message: 'colour?' } })
    const retry = (requestState: string) =>
      postModern(
        gw.url,
        'tools/call',
        {
          name: 'beta_ask_user',
          arguments: { question: 'colour?' },
          inputResponses: { [key as string]: { action: 'accept', content: { answer: 'blue' } } },
          requestState,
        },
        { 'mcp-name': 'beta_ask_user' },
        caps,
      )
    const [h, p, sig] = asked.requestState.split('.') as [string, string, string]
    const altered = `${h}.${p}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`
    const tampered = await retry(altered)
    expect(tampered.body.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining('requestState failed verification'),
    })
    // The altered state changed nothing: the genuine one still answers the held call.
    const done = await retry(asked.requestState)
    expect(JSON.stringify(done.body.result)).toContain('answer: blue')
    const replay = await retry(asked.requestState)
    expect(replay.body.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining('no longer held by this server'),
    })
  })

  it('relays calls to Streamable HTTP backends raw, answering exactly as the SDK path does', async () => {
    // The same backends behind a vmcp without the raw relay: every call takes the v2 SDK path.
    const sdk = await startVmcp({ backends: gw.config.backends }, { relay: false })
    try {
      const requests: Array<[string, Record<string, unknown>, Record<string, string>]> = [
        [
          'tools/call',
          { name: 'beta_echo', arguments: { text: 'raw' } },
          { 'mcp-name': 'beta_echo' },
        ],
        [
          'tools/call',
          { name: 'nova_echo', arguments: { text: 'raw' } },
          { 'mcp-name': 'nova_echo' },
        ],
        ['resources/read', { uri: 'nova://motd' }, { 'mcp-name': 'nova://motd' }],
        [
          'prompts/get',
          { name: 'nova_greet', arguments: { who: 'Ada' } },
          { 'mcp-name': 'nova_greet' },
        ],
        ['tools/list', {}, {}],
        ['resources/templates/list', {}, {}],
      ]
      for (const [method, params, headers] of requests) {
        const relayed = await postModern(gw.url, method, params, headers)
        const viaSdk = await postModern(sdk.url, method, params, headers)
        expect({ method, ...relayed }).toEqual({ method, ...viaSdk })
      }
      const call = await postModern(gw.url, ...requests[0]!)
      expect(call.body).toMatchObject({
        id: 1,
        result: {
          content: [{ type: 'text', text: 'beta: raw' }],
          resultType: 'complete',
          _meta: { 'io.modelcontextprotocol/serverInfo': { name: gw.config.name } },
        },
      })
      // resources/read is cacheable in 2026-07-28: ttlMs and cacheScope are required.
      const read = await postModern(gw.url, ...requests[2]!)
      expect(read.body).toMatchObject({
        result: { resultType: 'complete', ttlMs: 0, cacheScope: 'private' },
      })
      // The backend's own JSON-RPC error (a required argument missing) is its answer, verbatim.
      const bad = await postModern(
        gw.url,
        'prompts/get',
        { name: 'nova_greet' },
        { 'mcp-name': 'nova_greet' },
      )
      expect(bad.body).toMatchObject({
        error: { code: -32602, message: expect.stringMatching(/^Invalid arguments/) },
      })
    } finally {
      await sdk.close()
    }
  })

  it('cancels a relayed HTTP backend call when the modern request stream closes', async () => {
    const client = await connectV2(gw.url, 'auto')
    const before = JSON.parse(await callTextV2(client, 'beta_stats')) as { cancellations: number }
    const abort = new AbortController()
    let progressed = false
    const call = client.callTool(
      { name: 'beta_slow', arguments: { ms: 600_000, steps: 6000 } },
      { signal: abort.signal, onprogress: () => (progressed = true) },
    )
    // Progress came back on the request stream: the call is running at the backend.
    await vi.waitFor(() => expect(progressed).toBe(true), { timeout: 15_000, interval: 20 })
    abort.abort()
    await expect(call).rejects.toThrow()
    await vi.waitFor(
      async () => {
        const after = JSON.parse(await callTextV2(client, 'beta_stats')) as {
          cancellations: number
        }
        expect(after.cancellations).toBe(before.cancellations + 1)
      },
      { timeout: 15_000, interval: 100 },
    )
    await client.close()
  })

  it('refuses an HTTP backend elicitation on the raw relay when the modern caller did not declare it', async () => {
    const client = await connectV2(gw.url, 'auto')
    const res = await client.callTool({ name: 'beta_ask_user', arguments: { question: 'ok?' } })
    expect(JSON.stringify(res)).toContain('the 2026-07-28 client did not declare elicitation')
    await client.close()
  })

  it('fails a 2025 backend elicitation at once when the modern caller did not declare elicitation', async () => {
    const client = await connectV2(gw.url, 'auto')
    const res = await client.callTool({ name: 'alpha_ask_user', arguments: { question: 'ok?' } })
    expect(JSON.stringify(res)).toContain('the 2026-07-28 client did not declare elicitation')
    await client.close()
  })

  it("relays a 2026 backend's input_required to a modern caller under vmcp's own requestState, and the retry back to it", async () => {
    const caps = { elicitation: { form: {} } }
    const call = (extra: Record<string, unknown> = {}) =>
      postModern(
        gw.url,
        'tools/call',
        { name: 'nova_confirm', arguments: { action: 'deploy' }, ...extra },
        { 'mcp-name': 'nova_confirm' },
        caps,
      )
    const asked = (await call()).body.result as {
      resultType: string
      inputRequests: Record<string, { method: string; params: { message: string } }>
      requestState: string
    }
    expect(asked.resultType).toBe('input_required')
    expect(asked.inputRequests.confirm).toMatchObject({
      method: 'elicitation/create',
      params: { message: 'deploy?' },
    })
    // vmcp's own state (its header), carrying the backend's state inside.
    const [header, payload] = asked.requestState.split('.') as [string, string]
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toMatchObject({
      alg: 'HS256',
      typ: 'vmcp-request-state+jwt',
    })
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >
    expect(claims).toMatchObject({ b: 'nova', m: 'tools/call', n: 'confirm' })
    expect(typeof claims.s).toBe('string')
    const answer = { confirm: { action: 'accept', content: { ok: true } } }
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, s: 'forged' })).toString('base64url')}.${asked.requestState.split('.')[2]}`
    const tampered = await call({ inputResponses: answer, requestState: forged })
    expect(tampered.body.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining('requestState failed verification'),
    })
    const done = await call({ inputResponses: answer, requestState: asked.requestState })
    expect(JSON.stringify(done.body.result)).toContain('nova: deploy confirmed')

    // A v2 client fulfils the same round trip on its own.
    const client = await connectV2(gw.url, 'auto', { capabilities: caps })
    client.setRequestHandler('elicitation/create', async () => ({
      action: 'accept',
      content: { ok: false },
    }))
    expect(await callTextV2(client, 'nova_confirm', { action: 'drop' })).toBe('nova: drop refused')
    await client.close()
  })

  it("gives a 2025 client real elicitation and sampling requests for a 2026 backend's input_required", async () => {
    const client = await connectClient(gw.url, {
      capabilities: { elicitation: { form: {} }, sampling: {} },
    })
    const seen: string[] = []
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      seen.push(req.params.message)
      return { action: 'accept', content: { ok: true } }
    })
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'Paris' },
      model: 'test-model',
    }))
    expect(await callText(client, 'nova_confirm', { action: 'ship' })).toBe('nova: ship confirmed')
    expect(seen).toEqual(['ship?'])
    expect(await callText(client, 'nova_ask_llm', { prompt: 'capital?' })).toBe(
      'nova sampled: Paris',
    )
    await client.close()

    // The same through a v2 client that negotiated the 2025 revision.
    const legacy = await connectV2(gw.url, 'legacy', { capabilities: { elicitation: {} } })
    legacy.setRequestHandler('elicitation/create', async () => ({
      action: 'accept',
      content: { ok: true },
    }))
    expect(legacy.getProtocolEra()).toBe('legacy')
    expect(await callTextV2(legacy, 'nova_confirm', { action: 'tag' })).toBe('nova: tag confirmed')
    await legacy.close()
  })

  it("answers a 2025 backend's sampling request through a modern caller", async () => {
    const client = await connectV2(gw.url, 'auto', { capabilities: { sampling: {} } })
    client.setRequestHandler('sampling/createMessage', async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'Lyon' },
      model: 'test-model',
    }))
    expect(await callTextV2(client, 'beta_ask_llm', { prompt: 'city?' })).toBe('sampled: Lyon')
    await client.close()
  })

  it('serves a 2026-07-28-only backend to callers of both eras through the v2 client', async () => {
    const mono = await startHttpBackend(MODERN_BACKEND, ['--name', 'mono', '--legacy', 'reject'])
    const solo = await startVmcp({
      backends: [{ name: 'mono', transport: 'streamable-http', url: mono.url }],
    })
    try {
      const modern = await connectV2(solo.url, 'auto')
      expect(await callTextV2(modern, 'mono_echo', { text: 'm' })).toBe('mono: m')
      expect(await callTextV2(modern, 'mono_era')).toBe('modern')
      await modern.close()
      const legacy = await connectClient(solo.url)
      expect(await callText(legacy, 'mono_echo', { text: 'l' })).toBe('mono: l')
      expect(await callText(legacy, 'mono_era')).toBe('modern')
      await legacy.close()
    } finally {
      await solo.close()
      await mono.close()
    }
  })

  it("hears a 2026 backend's list changes on its listen stream and tells modern listeners and 2025 sessions", async () => {
    await expectToolListChangeHeard(gw.url, 'nova')
  })

  it('tells a modern listener about list changes on subscriptions/listen', async () => {
    const client = await connectV2(gw.url, 'auto')
    let changed = 0
    client.setNotificationHandler('notifications/tools/list_changed', async () => {
      changed++
    })
    const sub = await client.listen({ toolsListChanged: true })
    expect(sub.honoredFilter).toMatchObject({ toolsListChanged: true })
    expect(await callTextV2(client, 'alpha_add_tool', { name: 'fresh' })).toBe('added')
    await vi.waitFor(() => expect(changed).toBeGreaterThan(0), { timeout: 15_000, interval: 50 })
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('alpha_fresh')
    await sub.close()
    await client.close()
  })

  it('sends resources/updated on subscriptions/listen for the URIs the listener named, from a shared stdio backend', async () => {
    const client = await connectV2(gw.url, 'auto')
    const updated: string[] = []
    let toolsChanged = 0
    client.setNotificationHandler('notifications/resources/updated', async (n) => {
      updated.push(n.params.uri)
    })
    client.setNotificationHandler('notifications/tools/list_changed', async () => {
      toolsChanged++
    })
    // test://counter belongs to alpha (first in config order); no backend serves nowhere://x.
    const sub = await client.listen({ resourceSubscriptions: ['test://counter', 'nowhere://x'] })
    expect(sub.honoredFilter).toEqual({ resourceSubscriptions: ['test://counter'] })
    const other = await connectV2(gw.url, 'auto')
    const otherUpdates: string[] = []
    other.setNotificationHandler('notifications/resources/updated', async (n) => {
      otherUpdates.push(n.params.uri)
    })
    const otherSub = await other.listen({ toolsListChanged: true })
    expect(await callTextV2(client, 'alpha_bump')).toMatch(/^\d+$/)
    await vi.waitFor(() => expect(updated).toEqual(['test://counter']), {
      timeout: 15_000,
      interval: 50,
    })
    // A listener that did not name the URI hears nothing of it; nobody asked for list changes
    // on the first stream, so none arrive there.
    expect(otherUpdates).toEqual([])
    expect(toolsChanged).toBe(0)
    await sub.close()
    await otherSub.close()
    await Promise.all([client.close(), other.close()])
  })

  it('answers a 2025 session that sends MCP-Protocol-Version: 2026-07-28 as its own version, logging once', async () => {
    const client = await connectClient(gw.url)
    const transport = client.transport as V1Transport
    const sessionId = transport.sessionId as string
    const confused = async (id: number) =>
      fetch(gw.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2026-07-28',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'beta_echo', arguments: { text: 'hi' } },
        }),
      })
    for (const id of [101, 102]) {
      const res = await confused(id)
      expect(res.status).toBe(200)
      expect(await res.text()).toContain('beta: hi')
    }
    expect(
      gw.logs.filter((l) => l.includes('2026-07-28 protocol version header on a 2025 session')),
    ).toHaveLength(1)
    // A version nobody serves is still refused, as before.
    const bogus = await fetch(gw.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '1999-01-01',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 103, method: 'tools/list' }),
    })
    expect(bogus.status).toBe(400)
    expect(await callText(client, 'alpha_echo', { text: 'still fine' })).toBe('alpha: still fine')
    await client.close()
  })

  it('rejects an Mcp-Method header that disagrees with the body with -32020', async () => {
    const res = await postModern(gw.url, 'tools/list', {}, { 'mcp-method': 'prompts/list' })
    expect(res.status).toBe(400)
    expect(res.body).toMatchObject({ jsonrpc: '2.0', error: { code: -32020 } })
  })

  it('rejects an Mcp-Name header that disagrees with the tool name with -32020', async () => {
    const params = { name: 'beta_echo', arguments: { text: 'x' } }
    const ok = await postModern(gw.url, 'tools/call', params, { 'mcp-name': 'beta_echo' })
    expect(ok.status).toBe(200)
    expect(JSON.stringify(ok.body)).toContain('beta: x')
    const bad = await postModern(gw.url, 'tools/call', params, { 'mcp-name': 'alpha_echo' })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ error: { code: -32020 } })
  })

  it('allows the 2026-07-28 request headers in CORS preflights', async () => {
    const res = await fetch(gw.url, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:6274',
        'access-control-request-method': 'POST',
        'access-control-request-headers':
          'content-type, mcp-method, mcp-name, mcp-param-region, x-evil header',
      },
    })
    expect(res.status).toBe(204)
    const allowed = (res.headers.get('access-control-allow-headers') ?? '')
      .toLowerCase()
      .split(/,\s*/)
    expect(allowed).toEqual(
      expect.arrayContaining([
        'mcp-method',
        'mcp-name',
        'mcp-param-region',
        'mcp-protocol-version',
      ]),
    )
    expect(allowed.join(',')).not.toContain('x-evil')
  })
})

describe('sessionless callers share pooled backend connections', () => {
  let beta: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
    gw = await startVmcp({
      backends: [{ name: 'beta', transport: 'streamable-http', url: beta.url }],
      operational: { sessionTtl: '1s' },
    })
  })
  afterAll(async () => {
    await gw?.close()
    await beta?.close()
  })

  it("watches a listened-for resource over the caller's own backend session while the stream is open", async () => {
    const direct = await connectClient(beta.url)
    const stats = async () =>
      JSON.parse(await callText(direct, 'stats')) as { sessions: number; open: number }
    const before = await stats()
    const client = await connectV2(gw.url, 'auto')
    const updated: string[] = []
    client.setNotificationHandler('notifications/resources/updated', async (n) => {
      updated.push(n.params.uri)
    })
    const sub = await client.listen({ resourceSubscriptions: ['test://counter'] })
    expect(sub.honoredFilter).toEqual({ resourceSubscriptions: ['test://counter'] })
    // Bumped over a connection vmcp does not see: the update comes from the backend itself.
    await callText(direct, 'bump')
    await vi.waitFor(() => expect(updated).toEqual(['test://counter']), {
      timeout: 15_000,
      interval: 50,
    })
    expect((await stats()).open).toBe(before.open + 1)
    await sub.close()
    // The stream is gone, so the caller's pooled session idles out like any other.
    await vi.waitFor(async () => expect((await stats()).open).toBe(before.open), {
      timeout: 15_000,
      interval: 200,
    })
    await client.close()
    await direct.close()
  })

  it('opens one backend session per (identity, backend), reuses it, and closes it after the idle limit', async () => {
    // Counted at the backend itself, over a direct connection that vmcp does not see.
    const direct = await connectClient(beta.url)
    const stats = async () =>
      JSON.parse(await callText(direct, 'stats')) as { sessions: number; open: number }
    const before = await stats()
    const client = await connectV2(gw.url, 'auto')
    for (const text of ['one', 'two', 'three'])
      expect(await callTextV2(client, 'beta_echo', { text })).toBe(`beta: ${text}`)
    const during = await stats()
    expect(during.sessions).toBe(before.sessions + 1)
    expect(during.open).toBe(before.open + 1)
    await vi.waitFor(async () => expect((await stats()).open).toBe(before.open), {
      timeout: 15_000,
      interval: 200,
    })
    // The next call opens a fresh pooled session and works as before.
    expect(await callTextV2(client, 'beta_echo', { text: 'again' })).toBe('beta: again')
    expect((await stats()).sessions).toBe(before.sessions + 2)
    await client.close()
    await direct.close()
  })
})
