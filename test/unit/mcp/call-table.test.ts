import { describe, expect, it } from 'vitest'
import { CallTable, StatelessCallTable, type CallEntry } from '../../../src/mcp/routing/call-table.js'

function table() {
  const cancelled: Array<{ internalId: number; answer: boolean }> = []
  const calls = new CallTable()
  const begin = (id: number | string) =>
    calls.begin(id, (e: CallEntry, _reason, answer) => cancelled.push({ internalId: e.internalId, answer }))
  return { calls, begin, cancelled }
}

describe('CallTable', () => {
  it('gives every call its own internal id, even when the client reuses its id', () => {
    const { begin } = table()
    const a = begin(1)
    const b = begin(1)
    expect(a.internalId).not.toBe(b.internalId)
  })

  it('cancels the latest live call with the id, telling the path to answer it', () => {
    const { calls, begin, cancelled } = table()
    const a = begin(7)
    calls.cancelFromClient(7, 'user')
    expect(cancelled).toEqual([{ internalId: a.internalId, answer: true }])
    expect(calls.size).toBe(0)
  })

  it('lets the cancellation for a call that went away be consumed by it, not by its retry', () => {
    const { calls, begin, cancelled } = table()
    const first = begin(3)
    calls.abandon(first)
    const retry = begin(3)
    calls.cancelFromClient(3, 'for the first one')
    expect(cancelled).toEqual([{ internalId: first.internalId, answer: false }])
    expect(retry.settled).toBe(false)
    expect(calls.size).toBe(1)
    // The debt is paid: the next cancellation is the client's word about the retry.
    calls.cancelFromClient(3, 'now the retry')
    expect(cancelled.at(-1)).toEqual({ internalId: retry.internalId, answer: true })
  })

  it('owes nothing for a call the client already cancelled before it went away', () => {
    const { calls, begin } = table()
    const first = begin(4)
    calls.cancelFromClient(4, 'user')
    calls.abandon(first)
    const retry = begin(4)
    calls.cancelFromClient(4, 'the retry')
    expect(retry.settled).toBe(true)
  })

  it('keeps an older call with a reused id answerable after a newer one ends', () => {
    const { calls, begin } = table()
    const stale = begin(9)
    const fresh = begin(9)
    calls.end(fresh)
    expect(stale.settled).toBe(false)
    expect(calls.size).toBe(1)
    calls.end(stale)
    expect(calls.size).toBe(0)
  })

  it('cancels the older call with a reused id once the newer one has ended, and picks the newest of several', () => {
    const { calls, begin, cancelled } = table()
    const stale = begin(5)
    const other = begin(6)
    const fresh = begin(5)
    calls.end(fresh)
    calls.cancelFromClient(5, 'user')
    expect(cancelled).toEqual([{ internalId: stale.internalId, answer: true }])
    expect(other.settled).toBe(false)
    const older = begin(8)
    const newer = begin(8)
    calls.cancelFromClient(8, 'user')
    expect(cancelled.at(-1)).toEqual({ internalId: newer.internalId, answer: true })
    expect(older.settled).toBe(false)
    calls.cancelFromClient(404, 'no such call')
    expect(cancelled).toHaveLength(2)
    expect(calls.size).toBe(2)
  })

  it('stops every live call once when the session closes, and forgets what the client owed', () => {
    const { calls, begin, cancelled } = table()
    const [a, b, c, d] = [begin(1), begin(2), begin(3), begin(4)]
    calls.end(b)
    calls.end(d)
    const owing = begin(5)
    calls.abandon(owing)
    cancelled.length = 0
    calls.clear('session closed')
    expect(cancelled).toEqual([
      { internalId: a.internalId, answer: false },
      { internalId: c.internalId, answer: false },
    ])
    expect(calls.size).toBe(0)
    calls.abandon(a)
    expect(cancelled).toHaveLength(2)
    // No debt survives the close: a new call with the abandoned call's id can be cancelled.
    const next = begin(5)
    calls.cancelFromClient(5, 'x')
    expect(next.settled).toBe(true)
  })

  it('bounds what it owes', () => {
    const { calls, begin } = table()
    for (let i = 0; i < 5000; i++) calls.abandon(begin(i))
    const retry = begin(0)
    // The oldest debts were dropped: this cancellation stops the live call.
    calls.cancelFromClient(0, 'x')
    expect(retry.settled).toBe(true)
  })
})

describe('StatelessCallTable', () => {
  function stateless() {
    const cancelled: Array<{ internalId: number; reason: string; answer: boolean }> = []
    const calls = new StatelessCallTable()
    const begin = (id: number | string) =>
      calls.begin(id, (e: CallEntry, reason, answer) => cancelled.push({ internalId: e.internalId, reason, answer }))
    return { calls, begin, cancelled }
  }

  it('numbers every call on its own, when callers use the same id', () => {
    const { begin } = stateless()
    const ids = [begin(1), begin(1), begin('1')].map((e) => e.internalId)
    expect(new Set(ids).size).toBe(3)
  })

  it('stops exactly the call whose caller went away, once, and not one that already ended', () => {
    const { calls, begin, cancelled } = stateless()
    const a = begin(7)
    const b = begin(7)
    const c = begin(8)
    calls.end(c)
    calls.abandon(a)
    calls.abandon(a)
    calls.abandon(c)
    expect(cancelled).toEqual([{ internalId: a.internalId, reason: 'client disconnected', answer: false }])
    expect(a.settled).toBe(true)
    expect(b.settled).toBe(false)
    expect(c.settled).toBe(true)
  })
})
