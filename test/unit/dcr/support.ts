import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createDcrManager,
  createMemoryDcrStore,
  type DcrCredentialStore,
  type DcrManager,
  type DcrUpstreamSpec,
} from '../../../src/dcr/index.js'
import { createOutboundFetch } from '../../../src/net/index.js'
import { memoryLogger } from '../../support/vmcp.js'

export const VMCP_ISSUER = 'http://127.0.0.1:4483'
export const CALLBACK = `${VMCP_ISSUER}/oauth/callback`

/** A throwaway HTTP server answering with `handler`; `requests` counts what reached it. */
export async function startStub(
  handler: (req: IncomingMessage, res: ServerResponse, origin: string) => void,
) {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    handler(req, res, origin)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    origin,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export function spec(
  name: string,
  dcr: Partial<DcrUpstreamSpec['dcr']>,
  scopes: string[] = ['mcp'],
): DcrUpstreamSpec {
  return {
    name,
    scopes,
    dcr: {
      clientName: 'vmcp',
      renewBefore: 10 * 60_000,
      autoReregister: true,
      preferClientMetadataDocument: false,
      ...dcr,
    },
  }
}

export interface Harness {
  manager: DcrManager
  logs: string[]
  records(): Array<Record<string, unknown>>
  lines(match: RegExp): string[]
  store: DcrCredentialStore
}

/** A manager with an in-memory log at trace level (the canary level) and a short backoff. */
export function harness(
  upstreams: DcrUpstreamSpec[],
  options: {
    store?: DcrCredentialStore
    now?: () => number
    timeoutMs?: number
    retryMs?: number
    reregisterIntervalMs?: number
    allowLoopbackClientMetadata?: boolean
  } = {},
): Harness {
  const { logger, logs } = memoryLogger('trace')
  const store = options.store ?? createMemoryDcrStore()
  const manager = createDcrManager({
    store,
    fetch: createOutboundFetch(),
    logger,
    issuer: VMCP_ISSUER,
    upstreams,
    retry: { initialMs: options.retryMs ?? 60_000 },
    ...(options.now ? { now: options.now } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.reregisterIntervalMs !== undefined
      ? { reregisterIntervalMs: options.reregisterIntervalMs }
      : {}),
    ...(options.allowLoopbackClientMetadata ? { allowLoopbackClientMetadata: true } : {}),
  })
  const records = () => logs.map((l) => JSON.parse(l) as Record<string, unknown>)
  return {
    manager,
    logs,
    store,
    records,
    lines: (match) =>
      records()
        .map((r) => String(r.msg))
        .filter((m) => match.test(m)),
  }
}
