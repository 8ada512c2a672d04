import {
  Client,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  StreamableHTTPClientTransport,
  type DiscoverResult,
  type McpSubscription,
} from '@modelcontextprotocol/client'
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js'
import {
  ErrorCode,
  McpError,
  SUPPORTED_PROTOCOL_VERSIONS,
  type ClientCapabilities,
  type Implementation,
  type ListPromptsResult,
  type ListResourcesResult,
  type ListResourceTemplatesResult,
  type ListToolsResult,
  type Notification,
  type Request,
  type Result,
  type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js'
import type { FetchLike } from '../../net/index.js'
import type { ListKind } from '../catalog.js'
import {
  AdoptedStdioTransport,
  type BackendStdioTransport,
  type InitializeAnswer,
} from '../stdio-transport.js'
import { withoutServerInfo } from './modern-relay.js'

/** Which revision line a backend speaks: 2025 (`initialize`, sessions) or 2026-07-28. */
export type BackendEra = 'legacy' | 'modern'

/** A backend's era, probed once and reused for every later connection to it. */
export interface EraVerdict {
  era: BackendEra
  /** The backend's `server/discover` answer: later connections adopt it with no round trip. */
  discover?: DiscoverResult
  /**
   * A 2026-07-28 backend that answers a 2025 `initialize` too (a dual-era server): calls that
   * cannot need input may take vmcp's raw 2025 relay to it, the fast path.
   */
  servesLegacy?: boolean
}

/**
 * `allowInputRequired`: a 2026-07-28 backend's `input_required` is returned, not fulfilled.
 * `askCaller`: otherwise, who answers its input requests: the caller of this request (without
 * it, the link's `relay` decides).
 */
export type BackendRequestOptions = RequestOptions & {
  allowInputRequired?: boolean
  askCaller?: (request: Request, signal: AbortSignal) => Promise<Result>
}

/** Rounds of input one request may ask for before it fails (the v2 client's default too). */
const MAX_INPUT_ROUNDS = 10

/** The client calls vmcp makes on a backend, whichever SDK line speaks to it. */
export interface BackendClient {
  request(request: Request, resultSchema: unknown, options?: BackendRequestOptions): Promise<Result>
  ping(options?: RequestOptions): Promise<unknown>
  setLoggingLevel(level: string, options?: RequestOptions): Promise<unknown>
  getServerCapabilities(): ServerCapabilities | undefined
  getServerVersion(): Implementation | undefined
  subscribeResource(params: { uri: string }, options?: RequestOptions): Promise<unknown>
  unsubscribeResource(params: { uri: string }, options?: RequestOptions): Promise<unknown>
  listTools(params?: { cursor?: string }, options?: RequestOptions): Promise<ListToolsResult>
  listPrompts(params?: { cursor?: string }, options?: RequestOptions): Promise<ListPromptsResult>
  listResources(
    params?: { cursor?: string },
    options?: RequestOptions,
  ): Promise<ListResourcesResult>
  listResourceTemplates(
    params?: { cursor?: string },
    options?: RequestOptions,
  ): Promise<ListResourceTemplatesResult>
}

/** Where a link goes: a Streamable HTTP endpoint, or a stdio process vmcp starts. */
export type ModernLinkTarget =
  | {
      url: URL
      /** Outgoing credentials and configured headers are added here, per request. */
      fetch: FetchLike
      stdio?: undefined
    }
  | {
      /** Not started yet: the probe (or the connection from an earlier verdict) starts it. */
      stdio: BackendStdioTransport
      url?: undefined
      fetch?: undefined
    }

export type ModernLinkOptions = ModernLinkTarget & ModernLinkCommon

interface ModernLinkCommon {
  clientInfo: Implementation
  capabilities: ClientCapabilities
  /** The verdict of an earlier probe of this backend; absent: probe now. */
  prior: EraVerdict | undefined
  timeout: number
  /** Input the backend asks for (the v2 client fulfils `input_required` through these). */
  relay: (request: Request, signal: AbortSignal) => Promise<Result>
  notify: (notification: Notification) => Promise<void>
  listChanged: (kind: ListKind | 'resources-all') => void
  resourceUpdated: (uri: string) => void
  closed: () => void
  onerror: (err: Error) => void
}

/**
 * Connects to a Streamable HTTP or stdio backend with the v2 SDK client in `auto` negotiation
 * (MCP 2026-07-28 §Versioning: a `server/discover` probe, `initialize` when the backend is
 * 2025), or straight from an earlier verdict. A 2026-07-28 backend gets a {@link ModernLink};
 * for a 2025 one the verdict is returned, so vmcp keeps serving it through the v1 client exactly
 * as before: over the probe's own process for stdio (`adopted`), else on a connection of its own.
 */
export async function connectModernLink(
  options: ModernLinkOptions,
): Promise<{ verdict: EraVerdict; link?: ModernLink; adopted?: AdoptedStdioTransport }> {
  if (options.prior?.era === 'legacy') return { verdict: options.prior }
  const client = new Client(options.clientInfo, {
    capabilities: options.capabilities as never,
    versionNegotiation: { mode: 'auto' },
  })
  const transport =
    options.stdio !== undefined
      ? options.stdio
      : new StreamableHTTPClientTransport(options.url, { fetch: options.fetch as never })
  const prior = options.prior?.discover
    ? { prior: { kind: 'modern' as const, discover: options.prior.discover } }
    : {}
  try {
    await client.connect(transport, { timeout: options.timeout, ...prior })
  } catch (err) {
    // The probe's wrapper hides the network failure (ECONNREFUSED while a launched backend
    // starts, which the runtime waits out): surface it as the v1 client does.
    const cause = (err as { cause?: unknown; data?: { cause?: unknown } } | undefined)?.cause
    throw err instanceof SdkError && cause instanceof Error ? cause : err
  }
  if (client.getProtocolEra() !== 'modern') {
    if (transport instanceof StreamableHTTPClientTransport) {
      await transport.terminateSession().catch(() => undefined)
    } else {
      // The stdio probe's process already completed the 2025 handshake: the v1 client takes it
      // over (the probe's client is dropped, not closed: closing it would end the process).
      const answer = initializeAnswer(client)
      if (answer) return { verdict: { era: 'legacy' }, adopted: new AdoptedStdioTransport(transport, answer) }
      await transport.reap()
    }
    await client.close().catch(() => undefined)
    return { verdict: { era: 'legacy' } }
  }
  const discover = client.getDiscoverResult() ?? options.prior?.discover
  // The raw 2025 relay reaches Streamable HTTP backends only (routing/route.ts).
  const servesLegacy =
    options.prior?.servesLegacy ?? (options.stdio ? false : await answersInitialize(options))
  return {
    verdict: { era: 'modern', servesLegacy, ...(discover ? { discover } : {}) },
    link: new ModernLink(client, options),
  }
}

/**
 * What a 2025 server answered the probe's `initialize`, for the v1 client that takes its process
 * over; undefined when the v1 client could not speak the negotiated version (a fresh process then).
 */
function initializeAnswer(client: Client): InitializeAnswer | undefined {
  const protocolVersion = client.getNegotiatedProtocolVersion()
  const serverInfo = client.getServerVersion()
  if (!protocolVersion || !serverInfo || !SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion)) return undefined
  const instructions = client.getInstructions()
  return {
    protocolVersion,
    capabilities: (client.getServerCapabilities() ?? {}) as Record<string, unknown>,
    serverInfo: serverInfo as InitializeAnswer['serverInfo'],
    ...(instructions !== undefined ? { instructions } : {}),
  }
}

/** Whether the backend also completes a 2025 `initialize` (once per backend, with the probe). */
async function answersInitialize(options: { url: URL; fetch: FetchLike } & ModernLinkCommon): Promise<boolean> {
  const client = new LegacyClient(options.clientInfo, { capabilities: {} })
  const transport = new LegacyTransport(options.url, { fetch: options.fetch })
  try {
    await client.connect(transport, { timeout: options.timeout })
    return true
  } catch {
    return false
  } finally {
    await transport.terminateSession().catch(() => undefined)
    await client.close().catch(() => undefined)
  }
}

/**
 * A connection to a 2026-07-28 backend through the v2 client, with the call surface and error
 * shapes of the v1 client the rest of vmcp uses: a backend's JSON-RPC error is an `McpError`
 * with its code, a timeout or a closed link the v1 codes, so sessions and the sessionless path
 * treat both eras alike. Calls that ask for input (`input_required`) are fulfilled through
 * `relay` (a 2025 caller answers real requests), unless the call passes `allowInputRequired`
 * (a 2026-07-28 caller gets the result and retries itself).
 */
export class ModernLink implements BackendClient {
  readonly #client: Client
  #closed = false
  /** What this link listens for on `subscriptions/listen` (2026-07-28 has no pushed changes). */
  #lists = false
  readonly #uris = new Set<string>()
  #subscription: McpSubscription | undefined
  #relistening: Promise<void> = Promise.resolve()
  readonly #onerror: (err: Error) => void

  constructor(client: Client, options: ModernLinkOptions) {
    this.#client = client
    this.#onerror = options.onerror
    const { capabilities, relay } = options
    const ask = (req: unknown, ctx: { mcpReq: { signal: AbortSignal } }) =>
      relay(req as Request, ctx.mcpReq.signal) as never
    if (capabilities.elicitation) client.setRequestHandler('elicitation/create', ask)
    if (capabilities.sampling) client.setRequestHandler('sampling/createMessage', ask)
    if (capabilities.roots) client.setRequestHandler('roots/list', ask)
    client.setNotificationHandler('notifications/message', (n) => options.notify(n as never))
    client.setNotificationHandler('notifications/tools/list_changed', () =>
      options.listChanged('tools'),
    )
    client.setNotificationHandler('notifications/prompts/list_changed', () =>
      options.listChanged('prompts'),
    )
    client.setNotificationHandler('notifications/resources/list_changed', () =>
      options.listChanged('resources-all'),
    )
    client.setNotificationHandler('notifications/resources/updated', (n) =>
      options.resourceUpdated(n.params.uri),
    )
    client.onclose = () => {
      if (this.#closed) return
      this.#closed = true
      options.closed()
    }
    client.onerror = options.onerror
  }

  async request(
    request: Request,
    _schema: unknown,
    options?: BackendRequestOptions,
  ): Promise<Result> {
    const { askCaller, ...rest } = options ?? {}
    const result =
      askCaller && !rest.allowInputRequired
        ? await this.#askingCaller(request, rest, askCaller)
        : await v1Errors(() => this.#client.request(request as never, rest as never))
    // The backend's identity stays behind vmcp: its callers see vmcp's serverInfo.
    return withoutServerInfo(result)
  }

  /**
   * A request whose input requests go to its own caller (MCP 2026-07-28 §Multi Round-Trip
   * Requests): each `input_required` round is answered by `ask`, then retried with the answers
   * and the backend's `requestState`. The v2 client's own fulfilment calls the link's handlers,
   * which cannot tell which call of a shared link (a stdio process) asked.
   */
  async #askingCaller(
    request: Request,
    options: RequestOptions,
    ask: (request: Request, signal: AbortSignal) => Promise<Result>,
  ): Promise<Result> {
    const signal = options.signal ?? new AbortController().signal
    let params = request.params
    for (let round = 0; ; round++) {
      const result = await v1Errors(() =>
        this.#client.request({ ...request, params } as never, {
          ...options,
          allowInputRequired: true,
        } as never),
      )
      if (result.resultType !== 'input_required') return result
      if (round === MAX_INPUT_ROUNDS)
        throw new McpError(
          ErrorCode.InternalError,
          `${request.method} still required input after ${MAX_INPUT_ROUNDS} rounds`,
        )
      const asked = (result.inputRequests ?? {}) as Record<string, Request>
      const inputResponses: Record<string, Result> = {}
      for (const [key, entry] of Object.entries(asked))
        inputResponses[key] = await ask({ method: entry.method, params: entry.params }, signal)
      const { requestState } = result as { requestState?: string }
      params = { ...request.params, inputResponses, ...(requestState ? { requestState } : {}) }
    }
  }

  /** 2026-07-28 has no `ping`: a `server/discover` answer shows the backend is there. */
  async ping(options?: RequestOptions): Promise<unknown> {
    return v1Errors(() => this.#client.discover(options as never))
  }

  /** 2026-07-28 has no `logging/setLevel` (the level rides each request's envelope). */
  async setLoggingLevel(): Promise<unknown> {
    return {}
  }

  /**
   * Hears the backend's list changes from now on: MCP 2026-07-28 sends them only on a
   * `subscriptions/listen` stream, which this link keeps open (and reopens if it drops).
   */
  watchLists(): Promise<void> {
    this.#lists = true
    return this.#relisten()
  }

  /** 2026-07-28 has no `resources/subscribe`: the URI joins this link's listen filter. */
  async subscribeResource(params: { uri: string }): Promise<unknown> {
    this.#uris.add(params.uri)
    await this.#relisten()
    return {}
  }

  async unsubscribeResource(params: { uri: string }): Promise<unknown> {
    this.#uris.delete(params.uri)
    await this.#relisten()
    return {}
  }

  getServerCapabilities(): ServerCapabilities | undefined {
    return this.#client.getServerCapabilities() as ServerCapabilities | undefined
  }

  getServerVersion(): Implementation | undefined {
    return this.#client.getServerVersion()
  }

  // Lists always reach the backend: vmcp keeps its own catalog and refreshes it on change.
  listTools(params?: { cursor?: string }, options?: RequestOptions) {
    return this.#list(() =>
      this.#client.listTools(params, fresh(options)),
    ) as Promise<ListToolsResult>
  }

  listPrompts(params?: { cursor?: string }, options?: RequestOptions) {
    return this.#list(() =>
      this.#client.listPrompts(params, fresh(options)),
    ) as Promise<ListPromptsResult>
  }

  listResources(params?: { cursor?: string }, options?: RequestOptions) {
    return this.#list(() =>
      this.#client.listResources(params, fresh(options)),
    ) as Promise<ListResourcesResult>
  }

  listResourceTemplates(params?: { cursor?: string }, options?: RequestOptions) {
    return this.#list(() =>
      this.#client.listResourceTemplates(params, fresh(options)),
    ) as Promise<ListResourceTemplatesResult>
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#subscription?.close().catch(() => undefined)
    await this.#client.close().catch(() => undefined)
  }

  /** Replaces the listen stream with one for the current filter (one change at a time). */
  #relisten(): Promise<void> {
    this.#relistening = this.#relistening.then(async () => {
      const old = this.#subscription
      this.#subscription = undefined
      await old?.close().catch(() => undefined)
      if (this.#closed || (!this.#lists && this.#uris.size === 0)) return
      const sub = (await v1Errors(() =>
        this.#client.listen({
          ...(this.#lists
            ? { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true }
            : {}),
          ...(this.#uris.size > 0 ? { resourceSubscriptions: [...this.#uris] } : {}),
        }),
      )) as unknown as McpSubscription
      this.#subscription = sub
      void sub.closed.then((how) => {
        // A stream the backend dropped is reopened (it restarted, or a proxy timed it out).
        if (how !== 'remote' || this.#closed || this.#subscription !== sub) return
        const retry = setTimeout(() => void this.#relisten().catch(this.#onerror), 1000)
        retry.unref()
      })
    })
    return this.#relistening
  }

  #list(call: () => Promise<unknown>): Promise<unknown> {
    return v1Errors(call as () => Promise<Result>)
  }
}

function fresh(options: RequestOptions | undefined) {
  return { ...(options as object), cacheMode: 'bypass' } as never
}

/** Errors as the v1 client raises them, which is what sessions and the modern path inspect. */
async function v1Errors(call: () => Promise<unknown>): Promise<Result> {
  try {
    return (await call()) as Result
  } catch (err) {
    if (err instanceof ProtocolError) {
      // The backend's own words, as the raw relay passes them (McpError would prefix its own).
      const own = new McpError(err.code, err.message, err.data)
      own.message = err.message
      throw own
    }
    if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout)
      throw new McpError(ErrorCode.RequestTimeout, err.message)
    if (err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed)
      throw new McpError(ErrorCode.ConnectionClosed, err.message)
    throw err
  }
}
