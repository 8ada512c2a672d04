import { describe, expect, it } from 'vitest'
import { blockedAddressReason, isPrivateAddress } from '../../../src/net/ssrf.js'

// RFC 6890 and the IANA IPv4/IPv6 Special-Purpose Address Registries: one address per block, and
// the exact name the guard reports for it. Each row fails when its block is taken off the list
// (the address then falls to a broader block, or to ipaddr.js, with another name).
const BLOCKED: ReadonlyArray<[address: string, reason: string]> = [
  ['0.1.2.3', '"this network" (RFC 791)'],
  ['10.20.30.40', 'private-use (RFC 1918)'],
  ['100.64.0.1', 'shared address space, CGNAT (RFC 6598)'],
  ['100.127.255.254', 'shared address space, CGNAT (RFC 6598)'],
  ['127.0.0.1', 'loopback (RFC 1122)'],
  ['169.254.169.254', 'link-local (RFC 3927)'],
  ['172.31.255.255', 'private-use (RFC 1918)'],
  ['192.0.0.170', 'IETF protocol assignments (RFC 6890)'],
  ['192.0.2.10', 'TEST-NET-1 (RFC 5737)'],
  ['192.88.99.1', '6to4 relay anycast (RFC 7526)'],
  ['192.168.1.1', 'private-use (RFC 1918)'],
  ['198.19.255.1', 'benchmarking (RFC 2544)'],
  ['198.51.100.7', 'TEST-NET-2 (RFC 5737)'],
  ['203.0.113.99', 'TEST-NET-3 (RFC 5737)'],
  ['239.255.255.250', 'multicast (RFC 5771)'],
  ['240.0.0.1', 'reserved (RFC 1112)'],
  ['255.255.255.255', 'limited broadcast (RFC 919)'],
  ['::', 'unspecified (RFC 4291)'],
  ['::1', 'loopback (RFC 4291)'],
  ['::8.8.8.8', 'IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)'],
  ['::808:808', 'IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)'],
  ['::ffff:0:8.8.8.8', 'IPv4-translated (RFC 6145)'],
  ['64:ff9b::8.8.8.8', 'IPv4/IPv6 translation, NAT64 (RFC 6052)'],
  ['64:ff9b:1::a00:1', 'local-use IPv4/IPv6 translation (RFC 8215)'],
  ['100::1', 'discard-only (RFC 6666)'],
  ['100:0:0:1::1', 'dummy IPv6 prefix (RFC 9780)'],
  ['2001:1::1', 'IETF protocol assignments (RFC 2928)'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo (RFC 4380)'],
  ['2001:2::1', 'benchmarking (RFC 5180)'],
  ['2001:10::1', 'ORCHID, deprecated (RFC 4843)'],
  ['2001:20::1', 'ORCHIDv2 (RFC 7343)'],
  ['2001:30::1', 'drone remote ID tags (RFC 9374)'],
  ['2001:db8::1', 'documentation (RFC 3849)'],
  ['2002:c0a8:101::1', '6to4 (RFC 3056)'],
  ['2002:808:808::1', '6to4 (RFC 3056)'],
  ['3fff::1', 'documentation (RFC 9637)'],
  ['5f00::1', 'segment routing SIDs (RFC 9602)'],
  ['fd00::1', 'unique local (RFC 4193)'],
  ['fc00::1', 'unique local (RFC 4193)'],
  ['fe80::1', 'link-local (RFC 4291)'],
  ['fe80::1%eth0', 'link-local (RFC 4291)'],
  ['fec0::1', 'site-local, deprecated (RFC 3879)'],
  ['ff02::1', 'multicast (RFC 4291)'],
  // RFC 4291 §2.5.5.2: an IPv4-mapped address is its IPv4 address, in either notation.
  ['::ffff:127.0.0.1', 'loopback (RFC 1122)'],
  ['::ffff:7f00:1', 'loopback (RFC 1122)'],
  ['::FFFF:169.254.169.254', 'link-local (RFC 3927)'],
  ['::ffff:198.51.100.1', 'TEST-NET-2 (RFC 5737)'],
]

describe('blockedAddressReason: only global unicast addresses are reachable', () => {
  it.each(BLOCKED)('%s is refused as %s', (address, reason) => {
    expect(blockedAddressReason(address)).toBe(reason)
    expect(isPrivateAddress(address)).toBe(true)
  })

  it('refuses what ipaddr.js classifies as special beyond the list (AS112, AMT)', () => {
    expect(blockedAddressReason('192.175.48.1')).toBe('as112 (ipaddr.js)')
    expect(blockedAddressReason('192.52.193.1')).toBe('amt (ipaddr.js)')
    expect(blockedAddressReason('2620:4f:8000::1')).toBe('as112v6 (ipaddr.js)')
  })

  it.each([
    '1.1.1.1',
    '8.8.8.8',
    '93.184.215.14',
    '::ffff:8.8.8.8',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
  ])('allows the public address %s', (address) => {
    expect(blockedAddressReason(address)).toBeUndefined()
    expect(isPrivateAddress(address)).toBe(false)
  })

  it('leaves host names to the check after DNS resolution', () => {
    expect(blockedAddressReason('localhost')).toBeUndefined()
    expect(blockedAddressReason('example.com')).toBeUndefined()
  })
})
