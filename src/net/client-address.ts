import ipaddr = require('ipaddr.js')

type Address = ipaddr.IPv4 | ipaddr.IPv6
type Range = [Address, number]

/** Which request header carries the proxy chain: only that one is read. */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded'

export interface ClientAddressOptions {
  /** CIDRs (or single addresses) of the reverse proxies in front of vmcp. */
  trustedProxies: readonly string[]
  /** Default 'x-forwarded-for'. */
  header?: ForwardedHeader
}

/** Whether `value` is an IPv4/IPv6 CIDR or a single address (what `trustedProxies` accepts). */
export function isCidrOrAddress(value: string): boolean {
  return ipaddr.isValidCIDR(value) || ipaddr.isValid(value)
}

function parseRange(value: string): Range {
  if (ipaddr.isValidCIDR(value)) {
    const [address, bits] = ipaddr.parseCIDR(value)
    // `::ffff:10.0.0.0/104` and `10.0.0.0/8` name the same hosts; compare in IPv4.
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
    }
    return [address, bits]
  }
  const address = ipaddr.process(value)
  return [address, address.kind() === 'ipv4' ? 32 : 128]
}

/**
 * An address as written in a header or by the socket: bare, `[v6]`, `[v6]:port`, `v4:port`, or
 * with a zone. IPv4-mapped IPv6 becomes IPv4. Undefined when it is not an address.
 */
export function parseAddress(raw: string): Address | undefined {
  let text = raw.trim()
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text)
  if (bracketed?.[1]) text = bracketed[1]
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(text)) text = text.slice(0, text.lastIndexOf(':'))
  text = text.replace(/%[\w.-]+$/, '')
  // isValid alone accepts `1`, `0x7f` and other legacy IPv4 forms no proxy writes.
  if (!ipaddr.IPv6.isValid(text) && !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined
  return ipaddr.process(text)
}

// Splits on `separator` outside quoted strings (RFC 9110 §5.6.4), keeping the quotes.
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = []
  let current = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string
    if (quoted && ch === '\\') {
      current += ch + (text[i + 1] ?? '')
      i++
      continue
    }
    if (ch === '"') quoted = !quoted
    if (ch === separator && !quoted) {
      parts.push(current)
      current = ''
    } else {
      current += ch
    }
  }
  parts.push(current)
  return parts
}

/**
 * The `for=` node of every RFC 7239 §4 element, in order; undefined when the header is not
 * well-formed or an element has no `for` (the hop it describes cannot be placed).
 */
function forwardedFor(header: string): string[] | undefined {
  const nodes: string[] = []
  for (const element of splitOutsideQuotes(header, ',')) {
    let node: string | undefined
    for (const pair of splitOutsideQuotes(element, ';')) {
      if (pair.trim() === '') continue
      const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*$/.exec(pair)
      if (!m?.[1] || m[2] === undefined) return undefined
      // RFC 7239 §4: parameter names are case-insensitive; each at most once per element.
      if (m[1].toLowerCase() !== 'for') continue
      if (node !== undefined) return undefined
      node = m[2].startsWith('"') ? m[2].slice(1, -1).replace(/\\(.)/g, '$1') : m[2]
    }
    if (node === undefined) return undefined
    nodes.push(node)
  }
  return nodes
}

/**
 * Resolves the client address of a request from its TCP peer and the proxy chain header.
 *
 * The chain is walked from the peer backwards (right to left) while the hop is a trusted proxy;
 * the first address that is not trusted is the client. Everything left of it was written by the
 * client itself and is ignored, so spoofed leftmost entries change nothing. A peer that is not a
 * trusted proxy is the client, whatever it sends. A malformed entry reached by the walk (or an
 * RFC 7239 obfuscated or `unknown` node) means the chain cannot be trusted: the peer is used.
 */
export function createClientAddressResolver(
  options: ClientAddressOptions,
): (peer: string, header: string | null | undefined) => string {
  const ranges = options.trustedProxies.map(parseRange)
  const header = options.header ?? 'x-forwarded-for'
  const trusted = (address: Address) =>
    ranges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits))

  return (peer, value) => {
    const peerAddress = parseAddress(peer)
    if (!peerAddress) return peer
    const peerText = peerAddress.toString()
    if (!trusted(peerAddress) || !value) return peerText
    const chain = header === 'forwarded' ? forwardedFor(value) : value.split(',')
    if (!chain) return peerText
    let client = peerText
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = parseAddress(chain[i] as string)
      if (!hop) return peerText
      client = hop.toString()
      if (!trusted(hop)) return client
    }
    // Every hop was a trusted proxy: the leftmost is as close to the client as we can tell.
    return client
  }
}
