import type { ServerContext } from '@modelcontextprotocol/server'
import type { Result } from '@modelcontextprotocol/sdk/types.js'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import { Interactions, type CallIo } from '../../../src/mcp/modern/input-required.js'
import { RequestStateError } from '../../../src/mcp/modern/request-state.js'

const ELICIT = {
  method: 'elicitation/create',
  params: { message: 'sure?', requestedSchema: { type: 'object', properties: {} } },
}

/** The parts of a v2 handler context input-required.ts reads. */
function leg(requestState?: string, inputResponses?: Record<string, unknown>): ServerContext {
  return {
    mcpReq: {
      requestState: () => requestState,
      inputResponses,
      envelope: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } },
      signal: new AbortController().signal,
      _meta: {},
      notify: async () => undefined,
    },
  } as unknown as ServerContext
}

/** A 2025 backend call that asks once, then answers with what it was told. */
function asking(seen: { signal?: AbortSignal; refused?: unknown }) {
  return async (io: CallIo): Promise<Result> => {
    seen.signal = io.signal
    try {
      const answer = await io.ask(ELICIT, io.signal)
      return { content: [{ type: 'text', text: JSON.stringify(answer) }] }
    } catch (err) {
      seen.refused = err
      return { content: [{ type: 'text', text: 'refused' }], isError: true }
    }
  }
}

function interactions(options: { maxHolds?: number; holdTimeout?: number } = {}) {
  return new Interactions({
    logger: createLogger({ level: 'silent' }),
    holdTimeout: options.holdTimeout ?? 60_000,
    maxHolds: options.maxHolds ?? 10,
    maxHoldsPerCaller: 10,
    requestState: { audience: 'https://vmcp.example/mcp' },
  })
}

const request = (ctx: ServerContext, start: ReturnType<typeof asking>) => ({
  callerKey: 'iss\u0000alice',
  backend: 'alpha',
  method: 'tools/call',
  target: 'ask',
  ctx,
  start,
})

afterEach(() => {
  vi.useRealTimers()
})

describe('held calls for 2026-07-28 callers', () => {
  it('holds a call that asks, and resumes it with the answer on the retry', async () => {
    const calls = interactions()
    const first = (await calls.run(request(leg(), asking({})))) as Record<string, unknown>
    expect(first.resultType).toBe('input_required')
    expect(first.inputRequests).toEqual({ input_1: ELICIT })
    expect(calls.held).toBe(1)
    const done = await calls.run(
      request(
        leg(first.requestState as string, { input_1: { action: 'accept', content: { ok: true } } }),
        asking({}),
      ),
    )
    expect(JSON.stringify(done)).toContain('accept')
    expect(calls.held).toBe(0)
  })

  it('refuses to hold more calls than its bound: the backend request fails at once instead', async () => {
    const calls = interactions({ maxHolds: 1 })
    const a = (await calls.run(request(leg(), asking({})))) as Record<string, unknown>
    expect(a.resultType).toBe('input_required')
    const seen: { refused?: unknown } = {}
    const b = await calls.run(request(leg(), asking(seen)))
    expect(b).toMatchObject({ isError: true })
    expect(String(seen.refused)).toContain('holds too many calls waiting for input')
    expect(calls.held).toBe(1)
  })

  it('ends a held call when its time is up: the backend call is cancelled, the retry fails at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const calls = interactions({ holdTimeout: 5_000 })
    const seen: { signal?: AbortSignal; refused?: unknown } = {}
    const first = (await calls.run(request(leg(), asking(seen)))) as Record<string, unknown>
    expect(calls.held).toBe(1)
    vi.advanceTimersByTime(5_000)
    expect(calls.held).toBe(0)
    expect(seen.signal?.aborted).toBe(true)
    const retry = calls.run(request(leg(first.requestState as string, {}), asking({})))
    const err = await retry.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(RequestStateError)
    expect((err as RequestStateError).reason).toBe('gone')
    expect((err as RequestStateError).message).toContain('no longer held by this server')
  })

  it('passes sampling and roots requests on only when the caller declared them', async () => {
    const calls = interactions()
    const sampling = { method: 'sampling/createMessage', params: { messages: [], maxTokens: 5 } }
    const seen: { refused?: unknown } = {}
    const start = async (io: CallIo): Promise<Result> => {
      await io.ask({ method: 'roots/list' }, io.signal).catch((err: unknown) => {
        seen.refused = err
      })
      await io.ask(sampling, io.signal)
      return { content: [] }
    }
    const ctx = leg()
    ;(ctx.mcpReq.envelope as Record<string, unknown>)[
      'io.modelcontextprotocol/clientCapabilities'
    ] = { sampling: {} }
    const first = (await calls.run({ ...request(ctx, asking({})), start })) as Record<
      string,
      unknown
    >
    // Roots were refused at once (not declared); sampling waits for the caller's answer.
    expect(first.inputRequests).toEqual({
      input_1: { method: sampling.method, params: sampling.params },
    })
    expect(String(seen.refused)).toContain('did not declare roots')
    calls.close()
  })

  it('re-asks what the retry left unanswered, and refuses an answered round replayed', async () => {
    const calls = interactions()
    const first = (await calls.run(request(leg(), asking({})))) as Record<string, unknown>
    const again = (await calls.run(
      request(leg(first.requestState as string, { other: {} }), asking({})),
    )) as Record<string, unknown>
    expect(again.resultType).toBe('input_required')
    expect(again.inputRequests).toEqual({ input_1: ELICIT })
    const replay = await calls
      .run(request(leg(first.requestState as string, {}), asking({})))
      .catch((e: unknown) => e)
    expect((replay as RequestStateError).reason).toBe('stale')
    calls.close()
  })
})
