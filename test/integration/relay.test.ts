import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

/** Resolves once `n` parties have arrived: proves two requests were in flight at once. */
function barrier(n: number) {
  let arrived = 0
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return async () => {
    arrived++
    if (arrived === n) open()
    await opened
  }
}

interface TestClient {
  client: Client
  elicitations: string[]
  listChanged: Promise<void>
  updates: string[]
  logs: string[]
}

async function connectAs(url: string, who: string, meet: () => Promise<void>): Promise<TestClient> {
  const client = new Client(
    { name: who, version: '1.0.0' },
    { capabilities: { elicitation: {}, sampling: {}, roots: { listChanged: true } } },
  )
  const out: TestClient = { client, elicitations: [], listChanged: Promise.resolve(), updates: [], logs: [] }
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    out.elicitations.push(req.params.message)
    await meet()
    return { action: 'accept', content: { answer: `${who} says yes` } }
  })
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    await meet()
    return { role: 'assistant', model: 'test', content: { type: 'text', text: `${who}-llm` } }
  })
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: `file:///home/${who}`, name: who }] }))
  out.listChanged = new Promise<void>((resolve) =>
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => resolve()),
  )
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
    out.updates.push(n.params.uri)
  })
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
    out.logs.push(String(n.params.data))
  })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  return out
}

/** Headers for raw POSTs on an SDK client's session. */
function rawHeaders(client: Client): Record<string, string> {
  const transport = client.transport as StreamableHTTPClientTransport
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-session-id': transport.sessionId ?? '',
    'mcp-protocol-version': transport.protocolVersion ?? '2025-06-18',
  }
}

describe.each([
  ['the raw HTTP relay', true],
  ['the SDK path', false],
])('relay between clients and backends, through %s', (_path, relay) => {
  let beta: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
    gw = await startVmcp({
      backends: [
        { name: 'alpha', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'] },
        { name: 'beta', transport: 'streamable-http', url: beta.url },
      ],
      // Short enough for the timeout test, long enough for two clients to meet on a loaded machine.
      operational: { callTimeout: '5s' },
    }, { relay })
  })
  afterAll(async () => {
    await gw?.close()
    await beta?.close()
  })

  it('relays elicitation, sampling and roots to the session whose call caused them, with two clients in flight', async () => {
    const meet = barrier(2)
    const a = await connectAs(gw.url, 'ann', meet)
    const b = await connectAs(gw.url, 'bob', meet)
    const [ra, rb] = await Promise.all([
      callText(a.client, 'beta_ask_user', { question: 'proceed?' }),
      callText(b.client, 'beta_ask_user', { question: 'proceed?' }),
    ])
    expect(ra).toBe('answer: ann says yes')
    expect(rb).toBe('answer: bob says yes')
    expect(a.elicitations).toEqual(['proceed?'])
    expect(b.elicitations).toEqual(['proceed?'])

    const meet2 = barrier(2)
    const a2 = await connectAs(gw.url, 'ann', meet2)
    const b2 = await connectAs(gw.url, 'bob', meet2)
    const [sa, sb] = await Promise.all([
      callText(a2.client, 'beta_ask_llm', { prompt: 'hi' }),
      callText(b2.client, 'beta_ask_llm', { prompt: 'hi' }),
    ])
    expect([sa, sb]).toEqual(['sampled: ann-llm', 'sampled: bob-llm'])
    expect(JSON.parse(await callText(b2.client, 'beta_list_roots'))).toEqual([{ uri: 'file:///home/bob', name: 'bob' }])
    for (const c of [a, b, a2, b2]) await c.client.close()
  })

  it('relays elicitation from a stdio backend to the calling session', async () => {
    const c = await connectAs(gw.url, 'cy', async () => undefined)
    expect(await callText(c.client, 'alpha_ask_user', { question: 'ok?' })).toBe('answer: cy says yes')
    await c.client.close()
  })

  it('relays progress notifications under the client progress token', async () => {
    const c = await connectAs(gw.url, 'p', async () => undefined)
    let seen: Progress[] = []
    // The SDK client dispatches a notification a microtask after a response read in the same
    // chunk, so on a loaded machine the last progress can find its handler gone: the client then
    // reports it through onerror. vmcp did relay it in order; count it.
    c.client.onerror = (err) => {
      const late = /progress notification for an unknown token: (.*)$/s.exec(err.message)?.[1]
      if (late) seen.push((JSON.parse(late) as { params: Progress }).params)
    }
    for (const tool of ['alpha_slow', 'beta_slow']) {
      seen = []
      const res = await c.client.callTool({ name: tool, arguments: { ms: 30, steps: 3 } }, undefined, {
        onprogress: (p) => seen.push(p),
      })
      expect(res.content).toEqual([{ type: 'text', text: 'done' }])
      await vi.waitFor(() => expect(seen).toHaveLength(3), EVENTUALLY)
      expect(seen.map((p) => [p.progress, p.total, p.message])).toEqual([
        [1, 3, 'step 1'],
        [2, 3, 'step 2'],
        [3, 3, 'step 3'],
      ])
    }
    await c.client.close()
  })

  it('relays cancellation to the backend', async () => {
    const c = await connectAs(gw.url, 'x', async () => undefined)
    const before = JSON.parse(await callText(c.client, 'beta_stats')) as { cancellations: number }
    const ac = new AbortController()
    const call = c.client.callTool({ name: 'beta_slow', arguments: { ms: 60_000, steps: 600 } }, undefined, {
      signal: ac.signal,
      onprogress: () => ac.abort('user cancelled'),
    })
    await expect(call).rejects.toThrow()
    await vi.waitFor(async () => {
      const after = JSON.parse(await callText(c.client, 'beta_stats')) as { cancellations: number }
      expect(after.cancellations).toBe(before.cancellations + 1)
    }, EVENTUALLY)
    await c.client.close()
  })

  it('answers a lone result as one JSON body and switches to SSE when progress comes first', async () => {
    const c = await connectAs(gw.url, 'j', async () => undefined)
    const post = (id: number, name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
      fetch(gw.url, {
        method: 'POST',
        headers: rawHeaders(c.client),
        body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } }),
      })
    for (const tool of ['alpha_echo', 'beta_echo']) {
      const res = await post(1, tool, { text: 'hi' })
      expect(res.headers.get('content-type')).toBe('application/json')
      expect(res.headers.get('content-length')).not.toBeNull()
      expect(await res.json()).toEqual({
        jsonrpc: '2.0',
        id: 1,
        result: { content: [{ type: 'text', text: `${tool.split('_')[0]}: hi` }] },
      })
    }
    const res = await post(2, 'beta_slow', { ms: 20, steps: 2 }, { progressToken: 'tok' })
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const events = (await res.text()).split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)))
    expect(events.map((e) => e.method ?? e.id)).toEqual(['notifications/progress', 'notifications/progress', 2])
    expect(events[0].params.progressToken).toBe('tok')
    await c.client.close()
  })

  it('cancels the backend call when the client disconnects without a cancellation', async () => {
    const c = await connectAs(gw.url, 'd', async () => undefined)
    const before = JSON.parse(await callText(c.client, 'beta_stats')) as { cancellations: number }
    const ac = new AbortController()
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: rawHeaders(c.client),
      signal: ac.signal,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'beta_slow', arguments: { ms: 60_000, steps: 600 }, _meta: { progressToken: 1 } },
      }),
    })
    // The first progress event proves the backend is working on it; then the client hangs up.
    await res.body?.getReader().read()
    ac.abort()
    await vi.waitFor(async () => {
      const after = JSON.parse(await callText(c.client, 'beta_stats')) as { cancellations: number }
      expect(after.cancellations).toBe(before.cancellations + 1)
    }, EVENTUALLY)
    await c.client.close()
  })

  it('reopens a backend session the backend forgot (404) once, and the call still answers', async () => {
    const c = await connectAs(gw.url, 'r', async () => undefined)
    expect(await callText(c.client, 'beta_echo', { text: 'one' })).toBe('beta: one')
    const expired = await fetch(new URL('/expire-sessions', beta.url), { method: 'POST' })
    expect(((await expired.json()) as { expired: number }).expired).toBeGreaterThan(0)
    expect(await callText(c.client, 'beta_echo', { text: 'two' })).toBe('beta: two')
    await c.client.close()
  })

  it('turns a backend that never answers into a tool error after callTimeout, not a hang', async () => {
    const c = await connectAs(gw.url, 't', async () => undefined)
    const res = await c.client.callTool({ name: 'beta_wait_forever', arguments: {} })
    expect(res.isError).toBe(true)
    expect(res.content).toEqual([{ type: 'text', text: 'backend "beta" did not answer in time' }])
    await c.client.close()
  })

  it('propagates tools/list_changed from a backend to every connected client', async () => {
    const a = await connectAs(gw.url, 'ann', async () => undefined)
    const b = await connectAs(gw.url, 'bob', async () => undefined)
    expect((await b.client.listTools()).tools.map((t) => t.name)).not.toContain('beta_dynamic_one')
    expect(await callText(a.client, 'beta_add_tool', { name: 'dynamic_one' })).toBe('added')
    await Promise.all([a.listChanged, b.listChanged])
    expect((await b.client.listTools()).tools.map((t) => t.name)).toContain('beta_dynamic_one')
    expect(await callText(b.client, 'beta_dynamic_one')).toContain('dynamic_one')
    await a.client.close()
    await b.client.close()
  })

  it('relays resource subscriptions and updates from HTTP and stdio backends', async () => {
    const c = await connectAs(gw.url, 's', async () => undefined)
    await c.client.subscribeResource({ uri: 'test://counter' })
    // test://counter is offered by alpha (first in config order), a shared stdio process.
    await callText(c.client, 'alpha_bump')
    await vi.waitFor(() => expect(c.updates).toContain('test://counter'), EVENTUALLY)
    await c.client.unsubscribeResource({ uri: 'test://counter' })
    await c.client.close()
  })

  it('relays backend log messages for a call to the calling client', async () => {
    const c = await connectAs(gw.url, 'l', async () => undefined)
    await c.client.setLoggingLevel('debug')
    await callText(c.client, 'beta_log', { level: 'warning', message: 'disk almost full' })
    await vi.waitFor(() => expect(c.logs).toContain('disk almost full'), EVENTUALLY)
    await c.client.close()
  })
})
