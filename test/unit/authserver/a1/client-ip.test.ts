import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import {
  createClientIpResolver,
  createRateLimiter,
  untilAllowed,
} from '../../../../src/authserver/rate-limit.js'
import { createLogger } from '../../../../src/log/index.js'
import { createMemoryStore } from '../../../../src/storage/index.js'

// @hono/node-server passes the Node socket as env.incoming; app.request takes the same env.
const from = (remoteAddress: string) => ({ incoming: { socket: { remoteAddress } } })

function limitedApp(header: 'x-forwarded-for' | 'forwarded') {
  const app = new Hono()
  const clientIp = createClientIpResolver({ trustedProxies: ['10.0.0.0/8'], header })
  app.get('/who', (c) => c.text(clientIp(c)))
  const logger = createLogger({ level: 'silent' })
  const store = createMemoryStore()
  app.get('/limited', createRateLimiter({ store, name: 't', limit: 1, clientIp, logger }), (c) =>
    c.text('ok'),
  )
  return app
}

describe('client address of a request (server.trustedProxies, server.forwardedHeader)', () => {
  it('reads RFC 7239 Forwarded when configured, and ignores X-Forwarded-For then', async () => {
    const app = limitedApp('forwarded')
    const who = async (headers: Record<string, string>, peer = '10.0.0.1') =>
      (await app.request('/who', { headers }, from(peer))).text()
    expect(await who({ forwarded: 'for=192.0.2.1, for=10.0.0.7' })).toBe('192.0.2.1')
    expect(await who({ forwarded: 'for="[2001:db8::1]:443"' })).toBe('2001:db8::1')
    expect(await who({ 'x-forwarded-for': '192.0.2.1' })).toBe('10.0.0.1')
    expect(await who({ forwarded: 'for=192.0.2.1' }, '203.0.113.1')).toBe('203.0.113.1')
    expect(await who({ forwarded: 'for=192.0.2.1' }, '::ffff:10.0.0.1')).toBe('192.0.2.1')
  })

  it('keys the limiter on the forwarded client: clients behind one proxy get own buckets', async () => {
    const app = limitedApp('x-forwarded-for')
    const hit = async (xff: string) =>
      app.request('/limited', { headers: { 'x-forwarded-for': xff } }, from('10.0.0.1'))
    expect((await hit('192.0.2.1')).status).toBe(200)
    expect((await hit('192.0.2.1')).status).toBe(429)
    expect((await hit('192.0.2.2')).status).toBe(200)
    // IPv6 clients share a bucket per /64.
    expect((await hit('2001:db8:1:2::1')).status).toBe(200)
    expect((await hit('2001:db8:1:2::ffff')).status).toBe(429)
  })
})

describe('untilAllowed (sliding-window Retry-After)', () => {
  it('waits in this window for the previous one to fade when this one alone leaves room', () => {
    // limit 10, previous window 10 hits, this one 4: 10 × (1 − e) + 5 ≤ 10 at e = 0.5.
    expect(untilAllowed(15_000, 60_000, 4, 10, 10)).toBe(15_000)
  })
  it('waits into the next window when this one is full', () => {
    // limit 3, 4 hits now, 40 s in: 20 s to the end, then 4 × (1 − e) + 1 ≤ 3 at e = 0.5.
    expect(untilAllowed(40_000, 60_000, 4, 0, 3)).toBe(50_000)
  })
  it('never returns a negative wait', () => {
    expect(untilAllowed(59_000, 60_000, 0, 1, 1)).toBeGreaterThanOrEqual(0)
  })
})
