import { isIP } from 'node:net'
import ipaddr = require('ipaddr.js')

type Address = ipaddr.IPv4 | ipaddr.IPv6

interface SpecialRange {
  name: string
  range: [Address, number]
}

// RFC 6890 and the IANA IPv4/IPv6 Special-Purpose Address Registries (as of RFC 9780), plus the
// multicast, reserved and deprecated blocks of the address architectures. A server-side fetch of
// a client-supplied URL never goes to any of them, whether or not the registry calls the block
// "globally reachable" (a translator or relay prefix reaches whatever it embeds). ipaddr.js's
// range() classifies most of these too; this list stays explicit so a change in its tables
// cannot quietly reopen one (and it names what it refuses).
const SPECIAL_RANGES: readonly SpecialRange[] = (
  [
    ['0.0.0.0/8', '"this network" (RFC 791)'],
    ['10.0.0.0/8', 'private-use (RFC 1918)'],
    ['100.64.0.0/10', 'shared address space, CGNAT (RFC 6598)'],
    ['127.0.0.0/8', 'loopback (RFC 1122)'],
    ['169.254.0.0/16', 'link-local (RFC 3927)'],
    ['172.16.0.0/12', 'private-use (RFC 1918)'],
    ['192.0.0.0/24', 'IETF protocol assignments (RFC 6890)'],
    ['192.0.2.0/24', 'TEST-NET-1 (RFC 5737)'],
    ['192.88.99.0/24', '6to4 relay anycast (RFC 7526)'],
    ['192.168.0.0/16', 'private-use (RFC 1918)'],
    ['198.18.0.0/15', 'benchmarking (RFC 2544)'],
    ['198.51.100.0/24', 'TEST-NET-2 (RFC 5737)'],
    ['203.0.113.0/24', 'TEST-NET-3 (RFC 5737)'],
    ['224.0.0.0/4', 'multicast (RFC 5771)'],
    ['240.0.0.0/4', 'reserved (RFC 1112)'],
    ['255.255.255.255/32', 'limited broadcast (RFC 919)'],
    ['::/128', 'unspecified (RFC 4291)'],
    ['::1/128', 'loopback (RFC 4291)'],
    ['::/96', 'IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)'],
    ['::ffff:0:0:0/96', 'IPv4-translated (RFC 6145)'],
    ['64:ff9b::/96', 'IPv4/IPv6 translation, NAT64 (RFC 6052)'],
    ['64:ff9b:1::/48', 'local-use IPv4/IPv6 translation (RFC 8215)'],
    ['100::/64', 'discard-only (RFC 6666)'],
    ['100:0:0:1::/64', 'dummy IPv6 prefix (RFC 9780)'],
    ['2001::/23', 'IETF protocol assignments (RFC 2928)'],
    ['2001::/32', 'Teredo (RFC 4380)'],
    ['2001:2::/48', 'benchmarking (RFC 5180)'],
    ['2001:10::/28', 'ORCHID, deprecated (RFC 4843)'],
    ['2001:20::/28', 'ORCHIDv2 (RFC 7343)'],
    ['2001:30::/28', 'drone remote ID tags (RFC 9374)'],
    ['2001:db8::/32', 'documentation (RFC 3849)'],
    ['2002::/16', '6to4 (RFC 3056)'],
    ['3fff::/20', 'documentation (RFC 9637)'],
    ['5f00::/16', 'segment routing SIDs (RFC 9602)'],
    ['fc00::/7', 'unique local (RFC 4193)'],
    ['fe80::/10', 'link-local (RFC 4291)'],
    ['fec0::/10', 'site-local, deprecated (RFC 3879)'],
    ['ff00::/8', 'multicast (RFC 4291)'],
  ] as const
).map(([cidr, name]) => ({ name, range: ipaddr.parseCIDR(cidr) }))

/** The most specific special-purpose block holding `address`, by name. */
function specialRange(address: Address): string | undefined {
  let best: { name: string; bits: number } | undefined
  for (const { name, range } of SPECIAL_RANGES) {
    const [net, bits] = range
    if (net.kind() !== address.kind() || (best && best.bits >= bits)) continue
    if (address.match(net as never, bits)) best = { name, bits }
  }
  return best?.name
}

/**
 * The WHATWG URL serialization of an IPv6 literal: hex groups only, zone dropped. ipaddr.js reads
 * `::a.b.c.d` as the IPv4-mapped `::ffff:a.b.c.d`, but the socket connects to the deprecated
 * IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1), a different address; hex leaves no doubt.
 */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address.replace(/%.*$/, '')}]/`).hostname.slice(1, -1)
}

/**
 * Why a fetch of a client-supplied URL must not connect to `address` (an IP literal), or
 * undefined when it is a global unicast address. Not an IP literal: undefined (the caller checks
 * the addresses the name resolves to). An IPv4-mapped IPv6 address is judged as its IPv4 address.
 */
export function blockedAddressReason(address: string): string | undefined {
  const family = isIP(address)
  if (family === 0) return undefined
  let parsed: Address
  try {
    parsed = ipaddr.parse(family === 6 ? canonicalIPv6(address) : address)
  } catch {
    return 'unparsable address'
  }
  // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d is the IPv4 host a.b.c.d; the socket connects to it.
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  }
  const special = specialRange(parsed)
  if (special) return special
  // Whatever ipaddr.js knows beyond the list above (AS112, AMT, …): only 'unicast' is global.
  const range = parsed.range()
  return range === 'unicast' ? undefined : `${range} (ipaddr.js)`
}

/** True when `address` (an IP literal) is anything but a global unicast address. */
export function isPrivateAddress(address: string): boolean {
  return blockedAddressReason(address) !== undefined
}
