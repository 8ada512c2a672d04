import { describe, expect, it } from 'vitest'
import { pairedRatio } from '../../../bench/load.js'

describe('pairedRatio (bench)', () => {
  it('is the ratio of the sums, with an interval around it', () => {
    const a = [90, 95, 100, 105, 110, 92, 98, 101, 99, 97]
    const b = [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    const r = pairedRatio(a, b)
    expect(r.ratio).toBeCloseTo(987 / 1000, 10)
    expect(r.low).toBeLessThan(r.ratio)
    expect(r.high).toBeGreaterThan(r.ratio)
    expect(r.low).toBeGreaterThanOrEqual(0.9)
    expect(r.high).toBeLessThanOrEqual(1.1)
  })

  it('keeps rounds paired: a host swing both rows saw does not widen the interval', () => {
    // Both rows slow down together in some rounds; a is always exactly 0.95 of b.
    const b = [1000, 400, 1000, 700, 1000, 300, 900, 1000, 500, 1000]
    const a = b.map((x) => x * 0.95)
    const r = pairedRatio(a, b)
    expect(r.low).toBeCloseTo(0.95, 10)
    expect(r.high).toBeCloseTo(0.95, 10)
  })

  it('is seeded: the same rounds give the same interval', () => {
    const a = [3, 5, 4, 6, 5]
    const b = [4, 4, 5, 5, 6]
    expect(pairedRatio(a, b)).toEqual(pairedRatio(a, b))
  })

  it('has no interval from one round', () => {
    expect(pairedRatio([9], [10])).toEqual({ ratio: 0.9, low: 0.9, high: 0.9 })
  })
})
