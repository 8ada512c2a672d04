import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Deadline, DeadlineSweep } from '../../../src/mcp/relay/deadline-sweep.js'

class Item extends Deadline {
  expired = 0
  constructor(readonly onExpire?: () => void) {
    super()
  }
  expire(): void {
    this.expired++
    this.onExpire?.()
  }
}

describe('DeadlineSweep', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('expires an armed item once, between its deadline and one tick later', () => {
    const sweep = new DeadlineSweep(100)
    const item = new Item()
    sweep.arm(item, 1000)
    vi.advanceTimersByTime(999)
    expect(item.expired).toBe(0)
    vi.advanceTimersByTime(101)
    expect(item.expired).toBe(1)
    vi.advanceTimersByTime(5000)
    expect(item.expired).toBe(1)
  })

  it('moves a deadline when armed again (progress), without linking the item twice', () => {
    const sweep = new DeadlineSweep(100)
    const item = new Item()
    sweep.arm(item, 1000)
    vi.advanceTimersByTime(800)
    sweep.arm(item, 1000)
    vi.advanceTimersByTime(800)
    expect(item.expired).toBe(0)
    vi.advanceTimersByTime(300)
    expect(item.expired).toBe(1)
  })

  it('never expires a disarmed item, wherever it sat in the list', () => {
    const sweep = new DeadlineSweep(100)
    const [a, b, c] = [new Item(), new Item(), new Item()]
    for (const item of [a, b, c]) sweep.arm(item, 500)
    sweep.disarm(b)
    sweep.disarm(b)
    vi.advanceTimersByTime(600)
    expect([a.expired, b.expired, c.expired]).toEqual([1, 0, 1])
    // Unlinked: a finished item points at nothing and nothing points at it.
    expect([b.prevArmed, b.nextArmed, a.nextArmed, c.prevArmed]).toEqual([undefined, undefined, undefined, undefined])
  })

  it('keeps checking the rest when an expiry disarms its neighbour, and stops its timer when empty', () => {
    const sweep = new DeadlineSweep(100)
    const late = new Item()
    const first = new Item(() => sweep.disarm(late))
    sweep.arm(late, 10_000)
    sweep.arm(first, 200)
    const other = new Item()
    sweep.arm(other, 200)
    vi.advanceTimersByTime(300)
    expect([first.expired, other.expired, late.expired]).toEqual([1, 1, 0])
    vi.advanceTimersByTime(200)
    expect(vi.getTimerCount()).toBe(0)
    // Armed again after it stopped: the timer comes back.
    sweep.arm(late, 100)
    vi.advanceTimersByTime(200)
    expect(late.expired).toBe(1)
  })
})
