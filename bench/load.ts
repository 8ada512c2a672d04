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
