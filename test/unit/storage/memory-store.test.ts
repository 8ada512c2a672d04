import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import { createMemoryStore } from '../../../src/storage/index.js'

function captureWarnings() {
  const lines: string[] = []
  const logger = createLogger({ level: 'trace', destination: { write: (l: string) => void lines.push(l) } })
  const warnings = () =>
    lines
      .map((l) => JSON.parse(l) as { level: number; msg: string; evicted?: number })
      .filter((l) => l.level === 40)
  return { logger, warnings }
}

describe('memory store', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('expires exactly at the TTL, like Redis PX', async () => {
    let t = 1_000
    const store = createMemoryStore({ now: () => t })
    await store.put('code', 'c1', 'v', 100)
    await store.addToGroup('g', 'code', 'c1', 100)
    expect(await store.increment('rate', 'r', 100)).toBe(1)
    t += 99
    expect(await store.get('code', 'c1')).toBe('v')
    expect(await store.increment('rate', 'r', 100)).toBe(2)
    t += 1
    expect(await store.get('code', 'c1')).toBeUndefined()
    expect(await store.increment('rate', 'r', 100)).toBe(1)
    await store.close()
  })

  it('refuses to count over a value that is not a counter (as Redis INCR does)', async () => {
    const store = createMemoryStore()
    await store.put('rate', 'r', { not: 'a number' }, 1000)
    await expect(store.increment('rate', 'r', 1000)).rejects.toBeInstanceOf(TypeError)
    await store.close()
  })

  it('sweeps on an unref’d timer that close() clears', async () => {
    vi.useFakeTimers()
    const store = createMemoryStore({ sweepIntervalMs: 1000 })
    expect(vi.getTimerCount()).toBe(1)
    await store.close()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('is bounded: beyond maxEntries the oldest writes are evicted, one warn line per batch', async () => {
    const { logger, warnings } = captureWarnings()
    const store = createMemoryStore({ maxEntries: 10, logger })
    for (let i = 0; i < 10; i++) await store.put('pending', `p${i}`, i, 60_000)
    expect(warnings()).toHaveLength(0)
    // Rewriting p0 makes it the newest: p1 is now the oldest.
    await store.put('pending', 'p0', 'again', 60_000)
    await store.put('pending', 'p10', 10, 60_000)
    expect(await store.get('pending', 'p1')).toBeUndefined()
    expect(await store.get('pending', 'p0')).toBe('again')
    expect(await store.get('pending', 'p10')).toBe(10)
    expect(warnings()).toHaveLength(1)
    expect(warnings()[0]).toMatchObject({ evicted: 2, msg: expect.stringMatching(/evicted the oldest/) })
    // Counters count as entries too: a flood of new keys cannot grow the map either.
    for (let i = 0; i < 100; i++) await store.increment('ratelimit', `r${i}`, 60_000)
    const kept = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.get('ratelimit', `r${i}`)),
    )
    expect(kept.filter((v) => v !== undefined).length).toBeLessThanOrEqual(10)
    expect(kept.at(-1)).toBe(1)
    expect(warnings().reduce((n, w) => n + (w.evicted ?? 0), 0)).toBeGreaterThanOrEqual(91)
    await store.close()
  })

  it('expired entries are swept before anything live is evicted', async () => {
    let t = 1_000
    const { logger, warnings } = captureWarnings()
    const store = createMemoryStore({ now: () => t, maxEntries: 10, logger })
    for (let i = 0; i < 9; i++) await store.put('short', `s${i}`, i, 100)
    await store.put('long', 'keep', 'k', 60_000)
    t += 100
    for (let i = 0; i < 9; i++) await store.put('long', `l${i}`, i, 60_000)
    expect(await store.get('long', 'keep')).toBe('k')
    expect(warnings()).toHaveLength(0)
    await store.close()
  })

  it('an evicted group takes its members with it, so revoke-by-grant never misses one', async () => {
    const store = createMemoryStore({ maxEntries: 10 })
    await store.put('refresh', 'r-old', 'x', 60_000)
    await store.addToGroup('grant-old', 'refresh', 'r-old', 60_000)
    for (let i = 0; i < 10; i++) await store.addToGroup(`grant-${i}`, 'refresh', `r${i}`, 60_000)
    expect(await store.get('refresh', 'r-old')).toBeUndefined()
    await store.close()
  })
})
