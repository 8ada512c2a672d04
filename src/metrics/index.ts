/**
 * Prometheus metrics (prom-client) of one vmcp instance: requests by JSON-RPC method, backend
 * and outcome with latency histograms, backend health and restarts, sessions, and Mode B token
 * issuance. The caller binds a `CallStat` per (method, backend) with `call()` and records each
 * finished request on it; `render()` gives the text for `GET /metrics`, which the server guards
 * like `/status`.
 */
export {
  createMetrics,
  type CallOutcome,
  type CallStat,
  type Metrics,
  type MetricsSource,
} from './metrics.js'
