import { describe, expect, it } from 'vitest'
import { turnOrder } from '../../../bench/load.js'

/** How often row `b` takes its turn right after row `a`, over `rounds` rounds. */
function follows(n: number, rounds: number): number[][] {
  const counts = Array.from({ length: n }, () => new Array<number>(n).fill(0))
  for (let r = 0; r < rounds; r++) {
    const order = turnOrder(n, r)
    for (let i = 1; i < order.length; i++) (counts[order[i - 1] as number] as number[])[order[i] as number]! += 1
  }
  return counts
}

describe('turnOrder', () => {
  it('gives every row one turn per round', () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7]) {
      for (let r = 0; r < 2 * n + 3; r++) expect([...turnOrder(n, r)].sort((a, b) => a - b)).toEqual([...Array(n).keys()])
    }
  })

  it('has every row follow every other row once over n rounds (even n), twice over 2n (odd n)', () => {
    for (const [n, rounds, times] of [[2, 2, 1], [4, 4, 1], [6, 6, 1], [3, 6, 2], [5, 10, 2]] as const) {
      const counts = follows(n, rounds)
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) expect([n, a, b, counts[a]![b]]).toEqual([n, a, b, a === b ? 0 : times])
    }
  })

  it('lets every row go first once per n rounds', () => {
    const firsts = Array.from({ length: 6 }, (_, r) => turnOrder(6, r)[0])
    expect([...firsts].sort()).toEqual([0, 1, 2, 3, 4, 5])
  })
})
