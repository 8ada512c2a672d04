import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { openRawSession as openSession, startVmcp, type RunningVmcp } from '../support/vmcp.js'

/** Every JSON-RPC message in a reply, JSON or SSE. */
function messages(contentType: string | null, text: string): Array<Record<string, unknown>> {
  if (!contentType?.startsWith('text/event-stream')) return [JSON.parse(text) as Record<string, unknown>]
  return text
    .split('\n')
    .filter((l) => l.startsWith('data:'))
    .map((l) => JSON.parse(l.slice(5)) as Record<string, unknown>)
}

describe('a client that aborts calls and reuses their ids', () => {
  let beta: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
    gw = await startVmcp({
      backends: [
        { name: 'alpha', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'] },
        { name: 'beta', transport: 'streamable-http', url: beta.url },
      ],
    })
  })
  afterAll(async () => {
    await gw?.close()
    await beta?.close()
  })

  it('gets an answer to every call it waits for, and never another call’s answer', async () => {
    const headers = await openSession(gw.url)
    const post = (body: unknown, signal?: AbortSignal) =>
      fetch(gw.url, { method: 'POST', headers, body: JSON.stringify(body), ...(signal ? { signal } : {}) })
    const cancel = (id: number) =>
      post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'retry' } }).then((r) =>
        r.text(),
      )
    const lanes = 6
    const rounds = 24
    const total = lanes * rounds
    const answers: Array<{ id: number; text: string }> = []

    const lane = async (n: number) => {
      for (let k = 0; k < rounds; k++) {
        // Three ids per lane, so every id is reused eight times.
        const id = n * 10 + (k % 3)
        const backend = n % 2 === 0 ? 'beta' : 'alpha'
        const variant = k % 4
        const ac = new AbortController()
        const first = post(
          {
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: {
              name: `${backend}_slow`,
              arguments: { ms: variant === 3 ? 0 : 60_000, steps: variant === 3 ? 1 : 600 },
              _meta: { progressToken: `p${id}` },
            },
          },
          ac.signal,
        )
        if (variant === 1 || variant === 2) {
          // Abort once the backend is working on it: its first progress event has arrived.
          const res = await first
          await res.body?.getReader().read()
        }
        ac.abort()
        await first.then((r) => r.text()).catch(() => undefined)
        const pending: Promise<unknown>[] = []
        if (variant === 0 || variant === 3) await cancel(id)
        const text = `${backend} ${n}-${k}`
        const retry = post({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: `${backend}_echo`, arguments: { text } },
        })
        // The cancellation for the aborted call may overtake the retry on another connection.
        if (variant === 1) pending.push(cancel(id))
        const res = await retry
        for (const m of messages(res.headers.get('content-type'), await res.text())) {
          if (m.id !== id) continue
          const result = m.result as { content?: Array<{ text: string }> } | undefined
          const error = m.error as { code: number } | undefined
          answers.push({ id, text: result?.content?.[0]?.text ?? `error ${error?.code}` })
          expect(result ? result.content?.[0]?.text : error?.code).toBe(result ? `${backend}: ${text}` : -32800)
        }
        await Promise.all(pending)
      }
    }
    const running = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)))
    await vi.waitFor(() => expect(answers.length).toBe(total), { timeout: 60_000, interval: 100 })
    await running
  }, 120_000)
})
