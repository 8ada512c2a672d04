import { describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import type { Caller } from '../../../src/mcp/modern/caller-pool.js'
import { ListenHub } from '../../../src/mcp/modern/listen.js'

const caller = (key: string) => ({ key, listeners: 0 }) as unknown as Caller
const listen = (id: number, notifications: unknown) => ({
  jsonrpc: '2.0' as const,
  id,
  method: 'subscriptions/listen',
  params: { notifications },
})

/** Reads SSE frames from a listen stream as they come. */
function frames(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let buffered = ''
  return async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const end = buffered.indexOf('\n\n')
      if (end >= 0) {
        const frame = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        const data = /^data: (.*)$/m.exec(frame)?.[1]
        if (data) return JSON.parse(data) as Record<string, unknown>
        continue
      }
      const { value, done } = await reader.read()
      if (done) throw new Error('stream ended')
      buffered += decoder.decode(value, { stream: true })
    }
  }
}

const hub = () => makeHub()
function makeHub(
  watch?: (c: Caller, uris: string[]) => Promise<{ uris: string[]; stop: () => void }>,
) {
  return new ListenHub({
    logger: createLogger({ level: 'silent' }),
    serverInfo: { name: 'vmcp', version: '1' },
    maxListeners: 3,
    maxListenersPerCaller: 2,
    keepAliveMs: 60_000,
    watch: watch ?? (async (_c, uris) => ({ uris, stop: () => undefined })),
  })
}

describe('ListenHub', () => {
  it('acknowledges the honored filter and sends a per-user list change only to that user', async () => {
    const h = hub()
    const alice = caller('alice')
    const bob = caller('bob')
    const stop = new AbortController()
    const a = frames(await h.serve(alice, listen(1, { toolsListChanged: true }), stop.signal))
    const b = frames(await h.serve(bob, listen(2, { toolsListChanged: true }), stop.signal))
    expect(await a()).toMatchObject({
      method: 'notifications/subscriptions/acknowledged',
      params: {
        notifications: { toolsListChanged: true },
        _meta: { 'io.modelcontextprotocol/subscriptionId': 1 },
      },
    })
    await b()
    h.listChanged('tools', 'alice')
    h.listChanged('prompts')
    h.listChanged('tools')
    expect(await a()).toMatchObject({ method: 'notifications/tools/list_changed' })
    // Bob's first event is the shared change: Alice's own one never reached him, and nobody
    // asked for prompts.
    expect(await b()).toMatchObject({
      method: 'notifications/tools/list_changed',
      params: { _meta: { 'io.modelcontextprotocol/subscriptionId': 2 } },
    })
    expect(await a()).toMatchObject({ method: 'notifications/tools/list_changed' })
    stop.abort()
    expect(h.size).toBe(0)
    expect(alice.listeners).toBe(0)
  })

  it('refuses an invalid filter, too many URIs, and streams past the per-caller and total limits', async () => {
    const h = hub()
    const never = new AbortController().signal
    const a = caller('a')
    const bad = await h.serve(a, listen(1, { toolsListChanged: 'yes' }), never)
    expect(await bad.json()).toMatchObject({ id: 1, error: { code: -32602 } })
    const uris = Array.from({ length: 257 }, (_, i) => `a://${i}`)
    const many = await h.serve(a, listen(9, { resourceSubscriptions: uris }), never)
    expect(await many.json()).toMatchObject({ id: 9, error: { code: -32602 } })
    const one = frames(await h.serve(a, listen(2, { toolsListChanged: true }), never))
    await h.serve(a, listen(3, { promptsListChanged: true }), never)
    // Caller a holds its two streams; another caller still gets one, until the total is reached.
    const mine = await h.serve(a, listen(4, { toolsListChanged: true }), never)
    expect(await mine.json()).toMatchObject({ id: 4, error: { code: -32603 } })
    await h.serve(caller('b'), listen(5, { toolsListChanged: true }), never)
    const full = await h.serve(caller('c'), listen(6, { toolsListChanged: true }), never)
    expect(await full.json()).toMatchObject({ id: 6, error: { code: -32603 } })
    await one()
    h.closeAll()
    expect(await one()).toMatchObject({ id: 2, result: { resultType: 'complete' } })
    expect(h.size).toBe(0)
    expect(a.listeners).toBe(0)
  })

  it('honors only the URIs it could watch, tells only listeners that named one, and stops watching', async () => {
    let stopped = 0
    const h = makeHub(async (_c, uris) => ({
      uris: uris.filter((u) => u !== 'none://x'),
      stop: () => stopped++,
    }))
    const stop = new AbortController()
    const c = caller('alice')
    const next = frames(
      await h.serve(c, listen(1, { resourceSubscriptions: ['a://1', 'none://x'] }), stop.signal),
    )
    expect(await next()).toMatchObject({
      params: { notifications: { resourceSubscriptions: ['a://1'] } },
    })
    h.resourceUpdated('alice', 'a://2')
    h.resourceUpdated('bob', 'a://1')
    h.resourceUpdated('alice', 'a://1')
    expect(await next()).toMatchObject({
      method: 'notifications/resources/updated',
      params: { uri: 'a://1' },
    })
    stop.abort()
    expect(stopped).toBe(1)
  })
})
