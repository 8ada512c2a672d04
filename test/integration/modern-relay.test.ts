import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { RunningBackend } from '../support/backends.js'
import { callTextV2, connectV2, fixtureBehindBothPaths, postModern } from '../support/modern.js'
import type { RunningVmcp } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

// A backend that speaks only 2026-07-28 (--legacy reject): calls that cannot need input take
// vmcp's raw relay in that revision (modern/modern-relay.ts), the others the v2 client.
describe('the raw relay to a 2026-07-28-only backend', () => {
  let mono: RunningBackend
  let raw: RunningVmcp
  let sdk: RunningVmcp
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ backend: mono, raw, sdk, close } = await fixtureBehindBothPaths('mono', ['--legacy', 'reject']))
  })
  afterAll(() => close?.())

  it('answers exactly as the v2 client path does, with vmcp as the server', async () => {
    const requests: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      ['tools/call', { name: 'mono_echo', arguments: { text: 'raw' } }, { 'mcp-name': 'mono_echo' }],
      ['tools/call', { name: 'mono_era', arguments: {} }, { 'mcp-name': 'mono_era' }],
      ['resources/read', { uri: 'mono://motd' }, { 'mcp-name': 'mono://motd' }],
      [
        'prompts/get',
        { name: 'mono_greet', arguments: { who: 'Ada' } },
        { 'mcp-name': 'mono_greet' },
      ],
      // The backend's own JSON-RPC error (a required argument missing) is its answer.
      ['tools/call', { name: 'mono_echo', arguments: {} }, { 'mcp-name': 'mono_echo' }],
    ]
    for (const [method, params, headers] of requests) {
      const relayed = await postModern(raw.url, method, params, headers)
      const viaSdk = await postModern(sdk.url, method, params, headers)
      expect({ method, ...relayed }).toEqual({ method, ...viaSdk })
    }
    const call = await postModern(raw.url, ...requests[0]!)
    expect(call.body).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: {
        content: [{ type: 'text', text: 'mono: raw' }],
        resultType: 'complete',
        _meta: { 'io.modelcontextprotocol/serverInfo': { name: raw.config.name, version: expect.any(String) } },
      },
    })
    const era = await postModern(raw.url, ...requests[1]!)
    expect(JSON.stringify(era.body)).toContain('modern')
  })

  it('cancels the backend call when the caller closes its request stream', async () => {
    const stats = async () => {
      const res = await postModern(
        raw.url,
        'tools/call',
        { name: 'mono_wait_stats', arguments: {} },
        { 'mcp-name': 'mono_wait_stats' },
      )
      const result = res.body.result as { content: Array<{ text: string }> }
      return JSON.parse(result.content[0]?.text ?? '') as { waiting: number; cancelled: number; notices: number }
    }
    const before = await stats()
    const abort = new AbortController()
    const waiting = fetch(raw.url, {
      method: 'POST',
      signal: abort.signal,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'mono_wait',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 9,
        method: 'tools/call',
        params: {
          name: 'mono_wait',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    }).then(
      (res) => res.text(),
      () => undefined,
    )
    await vi.waitFor(async () => expect((await stats()).waiting).toBe(1), EVENTUALLY)
    abort.abort()
    await waiting
    // MCP 2026-07-28 §Cancellation: closing the request's stream is the cancellation, and no
    // notifications/cancelled follows it (the backend would refuse one).
    await vi.waitFor(
      async () => expect(await stats()).toEqual({ waiting: 0, cancelled: before.cancelled + 1, notices: 0 }),
      EVENTUALLY,
    )
    // Whatever vmcp sent at the cancel has arrived by now: the calls after it were answered.
    await postModern(raw.url, 'tools/call', { name: 'mono_echo', arguments: { text: 'after' } }, { 'mcp-name': 'mono_echo' })
    expect((await stats()).notices).toBe(0)
  })

  it('relays progress on the request stream; a caller that can answer input takes the v2 client', async () => {
    const client = await connectV2(raw.url, 'auto')
    const progress: number[] = []
    const res = await client.callTool(
      { name: 'mono_slow', arguments: { steps: 3 } },
      { onprogress: (p) => progress.push(p.progress) },
    )
    expect(res.content).toEqual([{ type: 'text', text: 'done after 3' }])
    expect(progress).toEqual([1, 2, 3])
    await client.close()
    const asking = await connectV2(raw.url, 'auto', { capabilities: { elicitation: { form: {} } } })
    asking.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { ok: true } }))
    expect(await callTextV2(asking, 'mono_confirm', { action: 'ship' })).toBe('mono: ship confirmed')
    await asking.close()
  })
})
