import { collectDefaultMetrics, Counter, Gauge, Registry, type Histogram } from 'prom-client'

/** How a client request ended. */
export type CallOutcome = 'ok' | 'error' | 'tool_error' | 'cancelled'
const OUTCOMES: readonly CallOutcome[] = ['ok', 'error', 'tool_error', 'cancelled']

/**
 * The counts of one (JSON-RPC method, backend) pair, bound once and reused by every call:
 * recording a call adds to plain numbers, which the registry reads when scraped.
 */
export interface CallStat {
  readonly method: string
  /** The backend that served the call; '' when vmcp answered itself (lists, initialize). */
  readonly backend: string
  done(outcome: CallOutcome, seconds: number): void
}

/** What the gauges read at scrape time (nothing is kept up to date on the request path). */
export interface MetricsSource {
  sessions(): number
  backends(): ReadonlyArray<{ name: string; health: string; restarts: number }>
}

export interface Metrics {
  /** The bound children for calls of `method` served by `backend`. */
  call(method: string, backend: string): CallStat
  /** Mode B: a token response was issued for this grant type (refresh_token = a refresh). */
  tokenIssued(grantType: string): void
  /** Mode B: a token request was refused with this RFC 6749 §5.2 error code. */
  tokenRefused(error: string): void
  /** Where sessions and backend health come from; set once the gateway exists. */
  setSource(source: MetricsSource): void
  /** The Prometheus text exposition of every metric. */
  render(): Promise<string>
  readonly contentType: string
}

// Methods a client may send; anything else is counted as `other`, so a client cannot mint
// label values (and series) at will.
const KNOWN_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
  'server/discover',
  'subscriptions/listen',
])

// Seconds: from a cached list (sub-millisecond) to a tool at callTimeout's default (60 s).
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const HEALTH_STATES = ['starting', 'healthy', 'unhealthy', 'per-user']

/** One (method, backend)'s calls: counts by outcome (OUTCOMES order) and their durations. */
interface CallCounts {
  readonly labels: { method: string; backend: string }
  readonly outcomes: number[]
  /** Calls per duration bucket, not cumulative (the last slot: above every bound). */
  readonly buckets: number[]
  sum: number
  count: number
}

/**
 * `vmcp_request_duration_seconds` from the calls' own counts, in the shape prom-client's
 * Histogram hands its registry (MetricObjectWithValues: `_bucket` series with a cumulative `le`,
 * then `_sum` and `_count`). prom-client's labelled `observe` builds a label object and a hash
 * string on every call, the costliest part of recording one; here a call adds to its own numbers
 * and the series are built only when scraped.
 */
function durationHistogram(name: string, help: string, all: () => Iterable<CallCounts>) {
  return {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    /** Registry.resetMetrics: the calls start over (the request counter reads the same calls). */
    reset() {
      for (const c of all()) {
        c.outcomes.fill(0)
        c.buckets.fill(0)
        c.sum = 0
        c.count = 0
      }
    },
    async get() {
      const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = []
      for (const c of all()) {
        if (c.count === 0) continue
        let below = 0
        DURATION_BUCKETS.forEach((le, i) => {
          below += c.buckets[i] as number
          values.push({ value: below, labels: { le, ...c.labels }, metricName: `${name}_bucket` })
        })
        values.push({ value: c.count, labels: { le: '+Inf', ...c.labels }, metricName: `${name}_bucket` })
        values.push({ value: c.sum, labels: { ...c.labels }, metricName: `${name}_sum` })
        values.push({ value: c.count, labels: { ...c.labels }, metricName: `${name}_count` })
      }
      return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values }
    },
  }
}

/** Index of the first bucket whose upper bound holds `seconds` (`le`), else the overflow slot. */
function bucketOf(seconds: number): number {
  let i = 0
  while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++
  return i
}

/**
 * Prometheus metrics of one vmcp instance, in a registry of its own (several instances in one
 * process, as in tests, do not mix). Calls are counted per (method, backend) in plain numbers
 * that the registry reads when scraped; gauges are read from the gateway then too.
 */
export function createMetrics(): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  let source: MetricsSource | undefined

  const calls: CallCounts[] = []
  new Counter({
    name: 'vmcp_requests_total',
    help: 'Client JSON-RPC requests by method, serving backend and outcome',
    labelNames: ['method', 'backend', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const c of calls) {
        c.outcomes.forEach((n, i) => {
          if (n > 0) this.inc({ ...c.labels, outcome: OUTCOMES[i] as CallOutcome }, n)
        })
      }
    },
  })
  // Not a prom-client Histogram, but what the registry reads of one (see durationHistogram).
  const duration = durationHistogram(
    'vmcp_request_duration_seconds',
    'Time from a client request reaching its session to its answer',
    () => calls,
  )
  registry.registerMetric(duration as unknown as Histogram)
  new Gauge({
    name: 'vmcp_sessions',
    help: 'Open client sessions (2025 protocol revisions)',
    registers: [registry],
    collect() {
      if (source) this.set(source.sessions())
    },
  })
  new Gauge({
    name: 'vmcp_backend_up',
    help: '1 when the backend is healthy (or serves per user), else 0',
    labelNames: ['backend'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const b of source?.backends() ?? []) this.set({ backend: b.name }, b.health === 'healthy' || b.health === 'per-user' ? 1 : 0)
    },
  })
  new Gauge({
    name: 'vmcp_backend_health',
    help: 'Backend health state: 1 for the current state, 0 for the others',
    labelNames: ['backend', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const b of source?.backends() ?? []) {
        for (const state of HEALTH_STATES) this.set({ backend: b.name, state }, b.health === state ? 1 : 0)
      }
    },
  })
  new Counter({
    name: 'vmcp_backend_restarts_total',
    help: 'Restarts of launched and stdio backend processes since vmcp started',
    labelNames: ['backend'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const b of source?.backends() ?? []) this.inc({ backend: b.name }, b.restarts)
    },
  })
  const tokens = new Counter({
    name: 'vmcp_authserver_tokens_issued_total',
    help: 'Mode B: token responses by grant type (authorization_code: new grants, refresh_token: refreshes)',
    labelNames: ['grant_type'] as const,
    registers: [registry],
  })
  const refused = new Counter({
    name: 'vmcp_authserver_token_errors_total',
    help: 'Mode B: refused token requests by RFC 6749 error code',
    labelNames: ['error'] as const,
    registers: [registry],
  })

  const stats = new Map<string, Map<string, CallStat>>()
  const bind = (method: string, backend: string): CallStat => {
    const counts: CallCounts = {
      labels: { method, backend },
      outcomes: OUTCOMES.map(() => 0),
      buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
      sum: 0,
      count: 0,
    }
    calls.push(counts)
    const { outcomes, buckets } = counts
    return {
      method,
      backend,
      done(outcome, seconds) {
        const i = OUTCOMES.indexOf(outcome)
        outcomes[i] = (outcomes[i] as number) + 1
        if (!Number.isFinite(seconds)) return
        const b = bucketOf(seconds)
        buckets[b] = (buckets[b] as number) + 1
        counts.sum += seconds
        counts.count++
      },
    }
  }

  return {
    contentType: registry.contentType,
    call(method, backend) {
      const m = KNOWN_METHODS.has(method) ? method : 'other'
      let byBackend = stats.get(m)
      if (!byBackend) stats.set(m, (byBackend = new Map()))
      let stat = byBackend.get(backend)
      if (!stat) byBackend.set(backend, (stat = bind(m, backend)))
      return stat
    },
    tokenIssued(grantType) {
      tokens.inc({ grant_type: grantType })
    },
    tokenRefused(error) {
      refused.inc({ error })
    },
    setSource(s) {
      source = s
    },
    render: () => registry.metrics(),
  }
}
