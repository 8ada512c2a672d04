import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SdkError, SdkErrorCode } from '@modelcontextprotocol/client'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ErrorCode,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type ClientCapabilities,
  type Notification,
  type Request,
  type Result,
} from '@modelcontextprotocol/sdk/types.js'
import type { Identity } from '../auth/incoming/index.js'
import type { OutgoingAuthStrategy } from '../auth/outgoing/index.js'
import type { BackendConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { FetchLike } from '../net/index.js'
import type { ListKind } from './catalog.js'
import { childEnvironment } from './child-env.js'
import {
  connectModernLink,
  type BackendClient,
  type EraVerdict,
  type ModernLink,
  type ModernLinkTarget,
} from './modern/backend-link.js'
import { OutputTail } from './output-tail.js'
import { SHARED_SCHEMA_VALIDATOR } from './schema-validator.js'
import {
  AdoptedStdioTransport,
  BackendStdioTransport,
  LegacyStdioTransport,
} from './stdio-transport.js'

/** A client request that is waiting on this backend; server-to-client traffic it causes goes back through it. */
export interface InflightCall {
  sessionId: string
  sendRequest: (request: Request, signal: AbortSignal) => Promise<Result>
  sendNotification: (notification: Notification) => Promise<void>
}

/** Where a backend's unsolicited traffic goes when no in-flight call claims it. */
export interface ConnectionSink {
  /** Relay a server-to-client request (elicitation, sampling, roots) with no in-flight call. */
  request?(request: Request, signal: AbortSignal): Promise<Result>
  notify?(notification: Notification): Promise<void>
  listChanged(kind: ListKind | 'resources-all', connection: BackendConnection): void
  resourceUpdated(uri: string, connection: BackendConnection): void
  closed(connection: BackendConnection): void
}

export interface BackendConnectionOptions {
  config: BackendConfig
  /** The caller, read per request: a session's identity is refreshed on every client request. */
  identity: () => Identity | undefined
  auth: OutgoingAuthStrategy
  fetch: FetchLike
  logger: Logger
  /** Capabilities to declare: mirror the downstream client so the backend sees what is possible. */
  capabilities: ClientCapabilities
  clientInfo: { name: string; version: string }
  sink: ConnectionSink
  /** The backend's era from an earlier probe (Streamable HTTP, stdio); absent: probe on connect. */
  era?: EraVerdict | undefined
  /** Told the probe's verdict, to keep for later connections. */
  onEra?: (verdict: EraVerdict) => void
}

/**
 * One MCP client session to one backend. Relays server-to-client requests and notifications to
 * the client session whose call is in flight here (for a per-session connection, that is always
 * its owner; a shared stdio process may serve several sessions).
 */
export class BackendConnection {
  /** The v1 client, or a v2 link to a 2026-07-28 backend behind the same surface. */
  client: BackendClient
  readonly #legacy: Client
  #modern: ModernLink | undefined
  readonly backend: string
  readonly inflight = new Set<InflightCall>()
  /** The last stderr lines of a stdio process: the reason shown when it dies. */
  readonly stderr = new OutputTail()
  #transport: Transport | undefined
  /** A stdio probe ended with its process: the verdict (2025) waits for the v1 connection. */
  #probeEnded = false
  /** A stdio probe's process that found a 2025 server: the v1 client speaks to it. */
  #adopted: AdoptedStdioTransport | undefined
  #closed = false
  readonly #options: BackendConnectionOptions

  constructor(options: BackendConnectionOptions) {
    this.#options = options
    this.backend = options.config.name
    this.#legacy = new Client(options.clientInfo, {
      capabilities: options.capabilities,
      jsonSchemaValidator: SHARED_SCHEMA_VALIDATOR,
    })
    this.client = this.#legacy as unknown as BackendClient
    this.#installHandlers()
  }

  get closed(): boolean {
    return this.#closed
  }

  /** For a Streamable HTTP backend: the session this connection holds there (for the relay). */
  get httpSession(): { sessionId: string | undefined; protocolVersion: string | undefined } | undefined {
    const t = this.#transport
    if (!(t instanceof StreamableHTTPClientTransport)) return undefined
    return { sessionId: t.sessionId, protocolVersion: t.protocolVersion }
  }

  /** Hears the backend's list changes: a 2026-07-28 backend sends them only to a listener. */
  async watchLists(): Promise<void> {
    await this.#modern?.watchLists()
  }

  /** Which revision line this connection speaks to the backend. */
  get era(): 'legacy' | 'modern' {
    return this.#modern ? 'modern' : 'legacy'
  }

  async connect(timeoutMs: number): Promise<void> {
    if (await this.#connectModern(timeoutMs)) return
    const transport = this.#adopted ?? this.#createTransport()
    this.#transport = transport
    this.#legacy.onclose = () => {
      if (this.#closed) return
      this.#closed = true
      this.#options.sink.closed(this)
    }
    this.#legacy.onerror = (err) => {
      this.#options.logger.debug({ backend: this.backend, err: err.message }, 'backend transport error')
    }
    await this.#legacy.connect(transport, { timeout: timeoutMs })
    keepProgressBeforeResponse(transport)
    if (this.#probeEnded) this.#settleEra({ era: 'legacy' })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#modern?.close()
    const transport = this.#transport
    // Streamable HTTP: DELETE the backend session so it does not linger until the backend's TTL.
    if (transport instanceof StreamableHTTPClientTransport) {
      await transport.terminateSession().catch(() => undefined)
    }
    await this.#legacy.close().catch(() => undefined)
  }

  /**
   * A Streamable HTTP or stdio backend is probed once with the v2 client (`auto` negotiation);
   * a 2026-07-28 backend is then spoken to through it, a 2025 one through the v1 client as
   * before. False when the backend is 2025 (or SSE, which 2026-07-28 does not have).
   */
  async #connectModern(timeoutMs: number): Promise<boolean> {
    const { config, sink, logger, era } = this.#options
    if (config.transport === 'sse' || era?.era === 'legacy') return false
    const target: ModernLinkTarget =
      config.transport === 'stdio'
        ? { stdio: this.#stdioTransport(BackendStdioTransport) }
        : { url: new URL(config.url), fetch: this.#authedFetch() }
    const stdio = target.stdio
    let connected: Awaited<ReturnType<typeof connectModernLink>>
    try {
      connected = await connectModernLink({
        ...target,
        clientInfo: this.#options.clientInfo,
        capabilities: this.#options.capabilities,
        prior: era,
        timeout: timeoutMs,
        relay: (request, signal) => this.#relay(request, signal),
        notify: async (n) => {
          const call = this.#claimant()
          if (call) return call.sendNotification(n)
          await sink.notify?.(n)
        },
        listChanged: (kind) => sink.listChanged(kind, this),
        resourceUpdated: (uri) => sink.resourceUpdated(uri, this),
        closed: () => {
          if (this.#closed) return
          this.#closed = true
          sink.closed(this)
        },
        onerror: (err) =>
          logger.debug({ backend: this.backend, err: err.message }, 'backend transport error'),
      })
    } catch (err) {
      // Some SDKs' stdio servers exit on any request before `initialize`: the probe ended the
      // process, which marks a 2025 server. A fresh one is started for the v1 client; the
      // verdict holds once that one answers (a process that dies anyway proves nothing).
      const ended = err instanceof SdkError && err.code === SdkErrorCode.EraNegotiationFailed
      if (!stdio || !ended) throw err
      this.stderr.clear()
      this.#probeEnded = true
      return false
    }
    const { verdict, link, adopted } = connected
    if (!era) this.#settleEra(verdict)
    if (!link) {
      this.#adopted = adopted
      // A fresh 2025 process starts after the probe's: its own stderr is the reason if it dies.
      if (!adopted) this.stderr.clear()
      return false
    }
    // The v2 client dispatches progress a microtask late too (see keepProgressBeforeResponse).
    if (stdio) keepProgressBeforeResponse(stdio)
    this.#modern = link
    this.client = link
    return true
  }

  /** The probe's verdict, for the runtime to log and keep for later connections. */
  #settleEra(verdict: EraVerdict): void {
    this.#options.onEra?.(verdict)
  }

  /** The in-flight call that should receive traffic the backend sends now (oldest first). */
  #claimant(): InflightCall | undefined {
    return this.inflight.values().next().value
  }

  /** A request the backend sends: to the call it belongs to, else to the sink. */
  async #relay(request: Request, signal: AbortSignal): Promise<Result> {
    const call = this.#claimant()
    if (call) return call.sendRequest(request, signal)
    if (this.#options.sink.request) return this.#options.sink.request(request, signal)
    throw new McpError(ErrorCode.InvalidRequest, `no client session to relay ${request.method} to`)
  }

  #installHandlers(): void {
    const { capabilities, sink } = this.#options
    const relay = (request: Request, signal: AbortSignal) => this.#relay(request, signal)
    const client = this.#legacy
    if (capabilities.elicitation) {
      client.setRequestHandler(ElicitRequestSchema, (req, extra) => relay(req, extra.signal) as never)
    }
    if (capabilities.sampling) {
      client.setRequestHandler(CreateMessageRequestSchema, (req, extra) => relay(req, extra.signal) as never)
    }
    if (capabilities.roots) {
      client.setRequestHandler(ListRootsRequestSchema, (req, extra) => relay(req, extra.signal) as never)
    }
    client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
      const call = this.#claimant()
      if (call) return call.sendNotification(n)
      await sink.notify?.(n)
    })
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      sink.resourceUpdated(n.params.uri, this)
    })
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      sink.listChanged('tools', this)
    })
    client.setNotificationHandler(PromptListChangedNotificationSchema, async () => {
      sink.listChanged('prompts', this)
    })
    client.setNotificationHandler(ResourceListChangedNotificationSchema, async () => {
      sink.listChanged('resources-all', this)
    })
  }

  #createTransport(): Transport {
    const { config } = this.#options
    // A stdio backend is a child of vmcp: it must not outlive a hard exit (children.ts).
    if (config.transport === 'stdio') return this.#stdioTransport(LegacyStdioTransport)
    const authedFetch = this.#authedFetch()
    const url = new URL(config.url)
    if (config.transport === 'sse') return new SSEClientTransport(url, { fetch: authedFetch })
    return new StreamableHTTPClientTransport(url, { fetch: authedFetch })
  }

  /** A stdio transport of either SDK line (not started yet); its stderr feeds the tail. */
  #stdioTransport<T extends LegacyStdioTransport | BackendStdioTransport>(
    Kind: new (params: {
      command: string
      args: string[]
      env: Record<string, string>
      cwd?: string | undefined
      stderr: 'pipe'
    }) => T,
  ): T {
    const { config, logger } = this.#options
    if (config.transport !== 'stdio') throw new Error(`${config.name} is not a stdio backend`)
    const transport = new Kind({
      command: config.command,
      args: config.args,
      env: childEnvironment(config.env),
      cwd: config.cwd,
      stderr: 'pipe',
    })
    transport.stderr?.on('data', (chunk: Buffer) => {
      for (const line of this.stderr.push(chunk)) {
        logger.debug({ backend: config.name, stderr: line.slice(0, 2000) }, 'backend stderr')
      }
    })
    return transport
  }

  /** Credentials are computed per request, so tokens can be refreshed during a long session. */
  #authedFetch(): FetchLike {
    const { config, auth, identity, fetch } = this.#options
    const configured = config.transport === 'stdio' ? {} : config.headers
    return async (input, init) => {
      const headers = new Headers(init?.headers)
      for (const [k, v] of Object.entries(configured)) if (!headers.has(k)) headers.set(k, v.reveal())
      for (const [k, v] of Object.entries(await auth.headers(identity(), init?.signal ?? undefined))) {
        headers.set(k, v)
      }
      return fetch(input, { ...init, headers })
    }
  }
}

/**
 * The SDK client runs a notification handler a microtask late but settles a response at once, so
 * a call's last progress read in the same chunk as its result finds its handler gone and is lost
 * (a loaded machine batches them often). Messages after a progress notification wait one
 * macrotask turn, in order, so the progress is relayed before the result.
 */
function keepProgressBeforeResponse(transport: Transport | BackendStdioTransport): void {
  const target = transport as Transport
  const deliver = target.onmessage
  if (!deliver) return
  let held: Array<Parameters<typeof deliver>> | undefined
  const onmessage: typeof deliver = (message, extra) => {
    if (held) {
      held.push([message, extra])
      return
    }
    deliver(message, extra)
    if ('method' in message && message.method === 'notifications/progress') {
      held = []
      setImmediate(() => {
        const queue = held ?? []
        held = undefined
        for (const args of queue) onmessage(...args)
      })
    }
  }
  target.onmessage = onmessage
}
