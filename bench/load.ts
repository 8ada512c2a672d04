import { performance } from 'node:perf_hooks'

export interface LoadOptions {
  concurrency: number
  warmupMs: number
  durationMs: number
  /** One unit of work for worker `worker` (0 ≤ worker < concurrency); rejects on failure. */
  call: (worker: number) => Promise<unknown>
  /** Called when the measured window opens and when it closes (e.g. to read CPU time). */
  onWindowStart?: () => void
  onWindowEnd?: () => void
  /** Where to put each measured latency (ms) too, to merge several runs' samples. */
  samples?: number[]
}

export interface LatencySummary {
  samples: number
  meanMs: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
}

export interface LoadResult extends LatencySummary {
  concurrency: number
  seconds: number
  requests: number
  errors: number
  firstError?: string
  rps: number
  /** Calls that finished inside the measured window, wherever they started (for per-call costs). */
  finishedInWindow: number
}

/**
 * Closed-loop load: `concurrency` workers each issue the next call as soon as the last one
 * answers. Calls are counted when they both start and finish inside the measured window (after
 * warm-up), so the edges of the window do not inflate the numbers.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, warmupMs, durationMs, call } = options
  const latencies: number[] = []
  let errors = 0
  let firstError: string | undefined
  const t0 = performance.now()
  const windowStart = t0 + warmupMs
  const windowEnd = windowStart + durationMs
  let finishedInWindow = 0
  // Each hook runs once: on its timer, or at the latest when the workers are done.
  const once = (hook: (() => void) | undefined) => {
    let done = false
    return () => {
      if (done) return
      done = true
      hook?.()
    }
  }
  const open = once(options.onWindowStart)
  const close = once(options.onWindowEnd)
  const opened = setTimeout(open, warmupMs)
  const closed = setTimeout(close, warmupMs + durationMs)

  const worker = async (i: number) => {
    for (;;) {
      const start = performance.now()
      if (start >= windowEnd) return
      let failed = false
      try {
        await call(i)
      } catch (err) {
        failed = true
        firstError ??= err instanceof Error ? err.message : String(err)
      }
      const end = performance.now()
      if (end >= windowStart && end <= windowEnd) finishedInWindow++
      if (start >= windowStart && end <= windowEnd) {
        if (failed) errors++
        else {
          latencies.push(end - start)
          options.samples?.push(end - start)
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)))
  clearTimeout(opened)
  clearTimeout(closed)
  open()
  close()
  const seconds = durationMs / 1000
  return {
    concurrency,
    seconds,
    requests: latencies.length,
    errors,
    ...(firstError ? { firstError } : {}),
    rps: latencies.length / seconds,
    finishedInWindow,
    ...summarize(latencies),
  }
}

/** Nearest-rank percentiles over raw samples (ms). */
export function summarize(samples: number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort()
  const n = sorted.length
  const at = (p: number) => {
    if (n === 0) return NaN
    return sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] ?? NaN
  }
  let sum = 0
  for (const v of sorted) sum += v
  return {
    samples: n,
    meanMs: n ? sum / n : NaN,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    maxMs: n ? (sorted[n - 1] ?? NaN) : NaN,
  }
}

/** A ratio between two rows and its 95 % interval. */
export interface PairedRatio {
  ratio: number
  low: number
  high: number
}

/**
 * sum(a) / sum(b) over rounds measured in pairs (a's and b's turns in round i saw the same
 * host), with a 95 % percentile-bootstrap interval: the rounds are resampled with replacement,
 * pairs kept together, so the interval shows how far the ratio moves with which seconds the host
 * happened to be busy. The generator is seeded: the same rounds give the same interval.
 */
export function pairedRatio(a: readonly number[], b: readonly number[], resamples = 4000): PairedRatio {
  const n = Math.min(a.length, b.length)
  const sum = (xs: readonly number[], idx: ArrayLike<number>) => {
    let s = 0
    for (let i = 0; i < idx.length; i++) s += xs[idx[i]!]!
    return s
  }
  const all = Array.from({ length: n }, (_, i) => i)
  const ratio = sum(a, all) / sum(b, all)
  if (n < 2) return { ratio, low: ratio, high: ratio }
  // mulberry32: small, seeded, good enough to pick indices.
  let state = 0x9e3779b9
  const random = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const draws = new Float64Array(resamples)
  const idx = new Uint32Array(n)
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(random() * n)
    draws[r] = sum(a, idx) / sum(b, idx)
  }
  draws.sort()
  const at = (q: number) => draws[Math.min(resamples - 1, Math.floor(q * resamples))] ?? NaN
  return { ratio, low: at(0.025), high: at(0.975) }
}

/**
 * The order `n` rows take their turns in round `round`: a balanced Latin square (Williams
 * design). Over `n` rounds (2n when `n` is odd) every row goes first once and follows every
 * other row equally often. A row's turn starts while the host is still settling after the row
 * before it (its GC, its sockets, the backend's share of its work): rotating one fixed order
 * would have every row always follow the same one, so a heavy row would always slow the same
 * neighbour down.
 */
export function turnOrder(n: number, round: number): number[] {
  const base: number[] = []
  for (let i = 0, low = 0, high = n - 1; i < n; i++) base.push(i % 2 === 0 ? low++ : high--)
  // base: 0, n-1, 1, n-2, ...: its steps (differences mod n) take every value once.
  const shifted = base.map((row) => (row + round) % n)
  return n % 2 === 1 && Math.floor(round / n) % 2 === 1 ? shifted.reverse() : shifted
}
