import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici'
import { isPrivateAddress } from './ssrf.js'

/** The fetch signature shared by oauth4webapi, jose and the MCP SDK transports. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export interface OutboundFetchOptions {
  /** Refuse connections to private/loopback/link-local addresses (URLs that came from clients). */
  ssrfGuard?: boolean
  connectTimeoutMs?: number
  /** Time to response headers; SSE bodies may then stream for longer. */
  headersTimeoutMs?: number
  /** Cap on a response body read with `readLimitedText`. */
  maxResponseBytes?: number
}

export class SsrfBlockedError extends Error {
  constructor(host: string) {
    super(`refusing to connect to internal address of ${host}`)
    this.name = 'SsrfBlockedError'
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** DNS lookup that fails when any resolved address is internal (checked after resolution, so DNS rebinding cannot slip past). */
function guardedLookup(hostname: string, options: object, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, [])
    const list = addresses as LookupAddress[]
    if (list.some((a) => isPrivateAddress(a.address))) return callback(new SsrfBlockedError(hostname), [])
    const all = (options as { all?: boolean }).all
    if (all) return callback(null, list)
    const first = list[0]
    if (!first) return callback(new SsrfBlockedError(hostname), [])
    callback(null, first.address, first.family)
  })
}

/**
 * The one outbound fetch: undici with connect/header timeouts and no automatic redirects (a
 * redirect is returned to the caller, never followed silently). With `ssrfGuard`, literal and
 * resolved internal addresses are refused.
 */
export function createOutboundFetch(options: OutboundFetchOptions = {}): FetchLike {
  const agentOptions: Agent.Options = {
    connect: {
      timeout: options.connectTimeoutMs ?? 10_000,
      ...(options.ssrfGuard ? { lookup: guardedLookup as never } : {}),
    },
    headersTimeout: options.headersTimeoutMs ?? 30_000,
    bodyTimeout: 0,
  }
  const agent = new Agent(agentOptions)
  const outbound: FetchLike = async (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
    if (options.ssrfGuard && isPrivateAddress(url.hostname.replace(/^\[|\]$/g, ''))) {
      throw new SsrfBlockedError(url.hostname)
    }
    const res = await undiciFetch(input as never, {
      ...(init as object),
      redirect: init?.redirect ?? 'manual',
      dispatcher: agent,
    } as never)
    return res as unknown as Response
  }
  // Request/response exchanges without fetch get connections of their own: every backend session
  // keeps a GET stream open through `agent`, and undici looks for a free connection by walking an
  // origin's pool from the start, past every connection a stream holds, on each request.
  let exchanges: Agent | undefined
  DISPATCHERS.set(outbound, () => (exchanges ??= new Agent(agentOptions)))
  return outbound
}

const DISPATCHERS = new WeakMap<FetchLike, () => Dispatcher>()

/**
 * An undici dispatcher beside a fetch made by {@link createOutboundFetch} (the same timeouts and
 * DNS guard, connection pools of its own), for callers that speak HTTP without fetch's
 * Request/Response objects. `undefined` for any other fetch (an injected one): such callers must
 * then use the fetch.
 */
export function outboundDispatcher(fetch: FetchLike): Dispatcher | undefined {
  return DISPATCHERS.get(fetch)?.()
}

/**
 * Reads a body stream to the end, giving up (and cancelling it) as soon as it passes `maxBytes`:
 * no unbounded buffering of what a peer sends. `undefined` means too large.
 */
export async function readStreamLimited(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Buffer | undefined> {
  if (!body) return Buffer.alloc(0)
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return Buffer.concat(chunks)
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined)
      return undefined
    }
    chunks.push(value)
  }
}

/** Reads a response body as text, failing once it exceeds `maxBytes`. */
export async function readLimitedText(res: Response, maxBytes: number): Promise<string> {
  const buf = await readStreamLimited(res.body, maxBytes)
  if (!buf) throw new Error(`response body exceeds ${maxBytes} bytes`)
  return buf.toString('utf8')
}
