import { describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/metrics/index.js'

describe('createMetrics', () => {
  it('binds each (method, backend) once: every call reuses the same children', () => {
    const m = createMetrics()
    const a = m.call('tools/call', 'github')
    expect(m.call('tools/call', 'github')).toBe(a)
    expect(m.call('tools/call', 'jira')).not.toBe(a)
    // Unknown methods share one bound set, whatever their name.
    expect(m.call('x/1', '')).toBe(m.call('x/2', ''))
    expect(m.call('x/1', '').method).toBe('other')
  })

  it('renders counters by outcome, the histogram, and the token counters', async () => {
    const m = createMetrics()
    const stat = m.call('tools/call', 'github')
    stat.done('ok', 0.002)
    stat.done('tool_error', 0.2)
    m.tokenIssued('authorization_code')
    m.tokenIssued('refresh_token')
    m.tokenIssued('refresh_token')
    m.tokenRefused('invalid_grant')
    m.setSource({ sessions: () => 3, backends: () => [{ name: 'github', health: 'unhealthy', restarts: 2 }] })
    const text = await m.render()
    expect(text).toContain('vmcp_requests_total{method="tools/call",backend="github",outcome="ok"} 1')
    expect(text).toContain('vmcp_requests_total{method="tools/call",backend="github",outcome="tool_error"} 1')
    expect(text).toContain('vmcp_request_duration_seconds_bucket{le="0.0025",method="tools/call",backend="github"} 1')
    expect(text).toContain('vmcp_request_duration_seconds_count{method="tools/call",backend="github"} 2')
    expect(text).toContain('vmcp_authserver_tokens_issued_total{grant_type="refresh_token"} 2')
    expect(text).toContain('vmcp_authserver_token_errors_total{error="invalid_grant"} 1')
    expect(text).toContain('vmcp_sessions 3')
    expect(text).toContain('vmcp_backend_up{backend="github"} 0')
    expect(text).toContain('vmcp_backend_restarts_total{backend="github"} 2')
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
  })

  it('writes the duration histogram as Prometheus does: inclusive cumulative buckets, +Inf, sum and count', async () => {
    const m = createMetrics()
    const stat = m.call('tools/call', 'a"b')
    stat.done('ok', 0.0005) // exactly a bound: counted in it (le is "less or equal")
    stat.done('ok', 0.0007)
    stat.done('cancelled', 61) // above every bound: +Inf only
    m.call('tools/list', 'never-called')
    const lines = (await m.render()).split('\n').filter((l) => l.startsWith('vmcp_request_duration_seconds'))
    const label = 'method="tools/call",backend="a\\"b"'
    expect(lines).toContain(`vmcp_request_duration_seconds_bucket{le="0.0005",${label}} 1`)
    expect(lines).toContain(`vmcp_request_duration_seconds_bucket{le="0.001",${label}} 2`)
    expect(lines).toContain(`vmcp_request_duration_seconds_bucket{le="60",${label}} 2`)
    expect(lines).toContain(`vmcp_request_duration_seconds_bucket{le="+Inf",${label}} 3`)
    expect(lines).toContain(`vmcp_request_duration_seconds_sum{${label}} 61.0012`)
    expect(lines).toContain(`vmcp_request_duration_seconds_count{${label}} 3`)
    // A pair bound but never called has no series.
    expect(lines.some((l) => l.includes('never-called'))).toBe(false)
    expect(await m.render()).toContain(`vmcp_requests_total{${label},outcome="cancelled"} 1`)
  })

  it('two instances keep separate registries', async () => {
    const a = createMetrics()
    const b = createMetrics()
    a.call('ping', '').done('ok', 0.001)
    expect(await b.render()).not.toContain('vmcp_requests_total{method="ping"')
  })
})
