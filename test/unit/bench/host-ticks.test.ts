import { describe, expect, it } from 'vitest'
import { readHostTicks, stealShare } from '../../../bench/processes.js'

describe('stealShare', () => {
  it('is the steal ticks over all ticks between two readings', () => {
    expect(stealShare({ total: 1000, steal: 10 }, { total: 1400, steal: 110 })).toBe(0.25)
    expect(stealShare({ total: 1000, steal: 10 }, { total: 1000, steal: 10 })).toBe(0)
  })

  it('reads the host counters from /proc/stat, steal within the total', () => {
    const a = readHostTicks()
    expect(a.total).toBeGreaterThan(0)
    expect(a.steal).toBeGreaterThanOrEqual(0)
    expect(a.steal).toBeLessThanOrEqual(a.total)
    const share = stealShare(a)
    expect(share).toBeGreaterThanOrEqual(0)
    expect(share).toBeLessThanOrEqual(1)
  })
})
