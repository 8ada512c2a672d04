/**
 * The candidate closest to `word` (case-insensitive edit distance, a swap of two neighbours
 * counting once), when it is close enough to be the intended spelling: at most one edit for
 * short words, a third of the length for longer ones. Ties give no suggestion.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase()
  const limit = Math.max(1, Math.floor(w.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  let tie = false
  for (const c of new Set(candidates)) {
    const d = editDistance(w, c.toLowerCase())
    if (d > limit) continue
    if (d < bestDistance) {
      best = c
      bestDistance = d
      tie = false
    } else if (d === bestDistance) tie = true
  }
  return tie ? undefined : best
}

/** `; did you mean "x"?` for a near miss, else ''; appended to an error message. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates)
  return c === undefined ? '' : `; did you mean "${c}"?`
}

// Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps.
function editDistance(a: string, b: string): number {
  if (a === b) return 0
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 0; j <= b.length; j++) (rows[0] as number[])[j] = j
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[]
    const prev = rows[i - 1] as number[]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1)
      }
      row[j] = d
    }
  }
  return (rows[a.length] as number[])[b.length] as number
}
