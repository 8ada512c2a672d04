import { afterEach, describe, expect, it, vi } from 'vitest'
import { createMemoryStore } from '../../../src/storage/index.js'

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
})
