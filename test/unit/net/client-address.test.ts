import { describe, expect, it } from 'vitest'
import { createClientAddressResolver, isCidrOrAddress } from '../../../src/net/index.js'

const xff = createClientAddressResolver({ trustedProxies: ['10.0.0.0/8', '127.0.0.1', 'fd00::/8'] })
const fwd = createClientAddressResolver({ trustedProxies: ['10.0.0.0/8'], header: 'forwarded' })

describe('client address through trusted proxies', () => {
  it('an untrusted peer is the client, whatever it forwards', () => {
    expect(xff('203.0.113.5', '198.51.100.1')).toBe('203.0.113.5')
    expect(xff('::ffff:203.0.113.5', '198.51.100.1')).toBe('203.0.113.5')
    expect(fwd('203.0.113.5', 'for=198.51.100.1')).toBe('203.0.113.5')
  })

  it('X-Forwarded-For: walks from the peer back while the hop is trusted', () => {
    expect(xff('10.1.2.3', '198.51.100.1')).toBe('198.51.100.1')
    expect(xff('::ffff:10.1.2.3', '198.51.100.1, 10.9.9.9')).toBe('198.51.100.1')
    expect(xff('fd00::1', '2001:db8::7, fd12::3')).toBe('2001:db8::7')
    // Ports and brackets as some proxies write them.
    expect(xff('10.1.2.3', '198.51.100.1:4711')).toBe('198.51.100.1')
    expect(xff('10.1.2.3', '[2001:db8::7]:443')).toBe('2001:db8::7')
  })

  it('spoofed leftmost entries beyond the trusted hops are ignored', () => {
    for (const spoof of ['1.1.1.1', '10.0.0.1', 'garbage', '127.0.0.1, 1.2.3.4']) {
      expect(xff('10.1.2.3', `${spoof}, 198.51.100.1, 10.0.0.2`)).toBe('198.51.100.1')
    }
  })

  it('all hops trusted: the leftmost is the client', () => {
    expect(xff('10.1.2.3', '10.0.0.9, 10.0.0.8')).toBe('10.0.0.9')
  })

  it('malformed chains fall back to the peer', () => {
    for (const bad of ['garbage', '198.51.100.1 , ,', '198.51.100.1, not-an-ip', '1', '0x7f000001', '300.1.1.1']) {
      expect(xff('10.1.2.3', bad), bad).toBe('10.1.2.3')
    }
    expect(xff('10.1.2.3', undefined)).toBe('10.1.2.3')
    expect(xff('10.1.2.3', '')).toBe('10.1.2.3')
  })

  it('RFC 7239 Forwarded: for= nodes, quoted IPv6 with port, case-insensitive names', () => {
    expect(fwd('10.0.0.1', 'for=192.0.2.43')).toBe('192.0.2.43')
    expect(fwd('10.0.0.1', 'For="[2001:db8:cafe::17]:4711";proto=https')).toBe('2001:db8:cafe::17')
    expect(fwd('10.0.0.1', 'for=6.6.6.6, for=192.0.2.60;proto=http;by=203.0.113.43, for=10.0.0.5')).toBe(
      '192.0.2.60',
    )
    // Only the configured header is read.
    expect(fwd('10.0.0.1', null)).toBe('10.0.0.1')
    expect(xff('10.0.0.1', 'for=192.0.2.43')).toBe('10.0.0.1')
  })

  it('RFC 7239: unknown or obfuscated nodes, missing for= and repeated for= fall back to the peer', () => {
    for (const bad of [
      'for=unknown',
      'for=_hidden',
      'proto=https',
      'for=1.2.3.4;for=5.6.7.8',
      'for="192.0.2.1',
      'for=192.0.2.1;;=x',
    ]) {
      expect(fwd('10.0.0.1', bad), bad).toBe('10.0.0.1')
    }
    // Unparseable client-written elements left of the client are never reached.
    expect(fwd('10.0.0.1', 'for=_spoof, for=192.0.2.60')).toBe('192.0.2.60')
  })

  it('config accepts CIDRs and single addresses only', () => {
    for (const ok of ['10.0.0.0/8', '192.168.1.1', '::1', 'fd00::/8', '::ffff:10.0.0.0/104']) {
      expect(isCidrOrAddress(ok), ok).toBe(true)
    }
    for (const bad of ['10.0.0.0/33', 'localhost', '10.0.0.0/', '', 'fd00::/129']) {
      expect(isCidrOrAddress(bad), bad).toBe(false)
    }
  })
})
