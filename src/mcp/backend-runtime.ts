import { setMaxListeners } from 'node:events'
import { connect } from 'node:net'
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ErrorCode, McpError, type ClientCapabilities } from '@modelcontextprotocol/sdk/types.js'
import type { OutgoingAuthStrategy } from '../auth/outgoing/index.js'
import type { BackendConfig, OperationalConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import type { FetchLike } from '../net/index.js'
import { BackendConnection, type ConnectionSink } from './backend-connection.js'
import { discoverCatalog, listAll, type Catalog, type ListKind } from './catalog.js'
import { Launcher } from './launcher.js'
import type { EraVerdict } from './modern/backend-link.js'
import { portInUse } from './output-tail.js'

export type BackendHealth = 'starting' | 'healthy' | 'unhealthy' | 'per-user'

/** Capabilities declared by connections that serve many client sessions (stdio, discovery). */
export const SHARED_CLIENT_CAPABILITIES: ClientCapabilities = {
  elicitation: { form: {}, url: {} },
  sampling: {},
  roots: { listChanged: true },
}

export interface BackendRuntimeOptions {
  config: BackendConfig
  auth: OutgoingAuthStrategy
  fetch: FetchLike
  logger: Logger
  operational: OperationalConfig
  clientInfo: { name: string; version: string }
  /** Traffic of the shared connection that no in-flight call claims. */
  sink: Omit<ConnectionSink, 'closed'>
  /** Called whenever `catalog` or `health` changes. */
  onChange: (runtime: BackendRuntime) => void
  /**
   * Called when the shared connection is back after it was lost or replaced (the backend
   * restarted, or was unreachable): whatever was subscribed there is forgotten.
   */
  onReconnect?: (runtime: BackendRuntime) => void
}

const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 30_000

// Process-wide, so generations of different runtimes never collide.
let lastGeneration = 0

/**
 * The lasting state of one backend: health, its catalog, and the shared connection used for
 * discovery and health checks (and for calls, when the backend is a stdio process: one process
 * serves every session). A backend that is down is retried; vmcp never waits for it.
 */
export class BackendRuntime {
  readonly name: string
  readonly config: BackendConfig
  readonly auth: OutgoingAuthStrategy
  health: BackendHealth = 'starting'
  lastError: string | undefined
  /** Process restarts scheduled since vmcp started (stdio and launched backends). */
  restarts = 0
  catalog: Catalog | undefined
  shared: BackendConnection | undefined
  /** Bumped on every (re)connect: session connections from an older generation are stale. */
  generation = ++lastGeneration
  /**
   * The backend's protocol era (Streamable HTTP, stdio): probed by every (re)connect of the
   * shared connection (for stdio, every process start), reused by the connections opened
   * meanwhile.
   */
  eraVerdict: EraVerdict | undefined
  /** A per-user backend failed a call: the next connection probes its era again. */
  #suspectEra = false
  #connecting: Promise<void> | undefined
  #connectedBefore = false
  #attempt = 0
  #slowPings = 0
  #retryTimer: NodeJS.Timeout | undefined
  #stopped = false
  readonly #launcher: Launcher | undefined
  readonly #options: BackendRuntimeOptions

  constructor(options: BackendRuntimeOptions) {
    this.#options = options
    this.config = options.config
    this.name = options.config.name
    this.auth = options.auth
    const launch = options.config.transport === 'stdio' ? undefined : options.config.launch
    if (launch) {
      // Stopping a launched process fits in half the shutdown budget; SIGKILL after that.
      const grace = Math.max(100, options.operational.shutdownTimeout / 2)
      this.#launcher = new Launcher(launch, this.name, options.logger, grace, (reason) => {
        if (this.#stopped) return
        if (this.identityScoped) {
          // Discovered per user: nothing to reconnect here, only the process to bring back.
          this.#scheduleRelaunch(reason)
          return
        }
        this.#markUnhealthy(reason)
        void this.shared?.close()
        this.shared = undefined
        this.#scheduleRestart()
      })
    }
  }

  /** vmcp owns the process (stdio, or `launch:`): it restarts it with backoff when it exits. */
  get #supervised(): boolean {
    return this.sharesConnection || this.#launcher !== undefined
  }

  /** Speaks MCP 2026-07-28: calls that may need input go through the v2 client. */
  get modern(): boolean {
    return this.eraVerdict?.era === 'modern'
  }

  /** Answers 2025 requests: a 2025 backend, or a 2026-07-28 one that serves both eras. */
  get servesLegacy(): boolean {
    return this.eraVerdict?.era !== 'modern' || this.eraVerdict.servesLegacy === true
  }

  /** One process per backend: stdio servers are shared by all sessions. */
  get sharesConnection(): boolean {
    return this.config.transport === 'stdio'
  }

  /** Credentials depend on the caller: connections and catalogs are per identity. */
  get identityScoped(): boolean {
    return this.auth.identityScoped && !this.sharesConnection
  }

  get toolCount(): number {
    return this.catalog?.tools.length ?? 0
  }

  /** Connects and discovers; resolves either way (failures mark the backend unhealthy). */
  async start(): Promise<void> {
    if (this.identityScoped) {
      this.#launcher?.ensure()
      this.health = 'per-user'
      this.#options.onChange(this)
      return
    }
    await this.#connect()
  }

  /** Health tick: ping a healthy backend, try to bring back an unhealthy one. */
  async check(): Promise<void> {
    if (this.#stopped || this.identityScoped || this.#connecting) return
    if (this.health === 'healthy' && this.shared && !this.shared.closed) {
      try {
        await this.shared.client.ping({ timeout: this.#options.operational.healthCheckTimeout })
        this.#slowPings = 0
        return
      } catch (err) {
        // Streamable HTTP §Session Management: 404 means the backend forgot our session (it
        // restarted or expired it), not that it is down: open a new one and rediscover.
        if (err instanceof StreamableHTTPError && err.code === 404 && !this.sharesConnection) {
          const stale = this.shared
          this.shared = undefined
          await stale?.close()
          this.#options.logger.info({ backend: this.name }, 'backend forgot its session; reconnecting')
          await this.#connect()
          return
        }
        // A slow answer may be load, not death: only N timeouts in a row count. A refused
        // connection or a dead process is certain at once.
        const timedOut = err instanceof McpError && err.code === ErrorCode.RequestTimeout
        if (timedOut && ++this.#slowPings < this.#options.operational.unhealthyThreshold) {
          this.#options.logger.debug({ backend: this.name, misses: this.#slowPings }, 'health check timed out')
          return
        }
        this.#slowPings = 0
        this.#markUnhealthy(`health check failed: ${errorText(err)}`)
        await this.shared?.close()
        this.shared = undefined
      }
    }
    // Processes vmcp owns restart on their own backoff timer.
    if (this.#supervised && this.#retryTimer) return
    await this.#connect()
  }

  /**
   * A call saw the backend fail: re-check now instead of waiting for the next tick. For a
   * per-user backend, true when the caller should replace the connection the call used.
   */
  reportFailure(err: unknown): boolean {
    if (this.identityScoped) {
      // No shared connection notices a per-user backend restart (perhaps in another era): the
      // failed connection is replaced, and the next one opened probes the era again.
      if (showsSameEra(err)) return false
      this.#suspectEra = true
      return true
    }
    if (this.health !== 'healthy') return false
    this.#options.logger.debug({ backend: this.name, err: errorText(err) }, 'backend call failed; checking health')
    void this.check()
    return false
  }

  /** Re-lists one kind after a list_changed notification, through the connection that sent it. */
  async refresh(kind: ListKind | 'resources-all', via: BackendConnection, into?: Catalog): Promise<void> {
    const target = into ?? this.catalog
    if (!target) return
    const kinds: ListKind[] = kind === 'resources-all' ? ['resources', 'resourceTemplates'] : [kind]
    const timeout = this.#options.operational.discoveryTimeout
    for (const k of kinds) {
      ;(target[k] as unknown[]) = await listAll(via.client, k, { timeout })
    }
    if (!into) this.#options.onChange(this)
  }

  /**
   * Opens a connection to this backend with the given identity and sink. It reuses the era
   * verdict unless `probe` (or an earlier failure) asks to probe again; a connection that
   * cannot open with the verdict (the backend now refuses that era) probes once more.
   */
  async openConnection(
    identity: () => Parameters<OutgoingAuthStrategy['headers']>[0],
    capabilities: ClientCapabilities,
    sink: ConnectionSink,
    probe = false,
  ): Promise<BackendConnection> {
    if (this.#suspectEra) {
      this.#suspectEra = false
      probe = true
    }
    const prior = probe ? undefined : this.eraVerdict
    const conn = new BackendConnection({
      config: this.config,
      identity,
      auth: this.auth,
      fetch: this.#options.fetch,
      logger: this.#options.logger,
      capabilities,
      clientInfo: this.#options.clientInfo,
      sink,
      era: prior,
      onEra: (verdict) => this.#adoptEra(verdict),
    })
    try {
      await conn.connect(this.#options.operational.discoveryTimeout)
    } catch (err) {
      await conn.close()
      if (prior && answered(err))
        return this.openConnection(identity, capabilities, sink, true)
      // A stdio process that died at startup: what it wrote to stderr is the reason.
      const said = conn.stderr.text()
      throw said ? new Error(`${errorText(err)}: ${said}`) : err
    }
    return conn
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#retryTimer)
    await this.shared?.close()
    this.shared = undefined
    await this.#launcher?.stop()
  }

  async #connect(): Promise<void> {
    if (this.#connecting) return this.#connecting
    this.#connecting = this.#doConnect().finally(() => {
      this.#connecting = undefined
    })
    return this.#connecting
  }

  async #doConnect(): Promise<void> {
    const { logger, operational } = this.#options
    const started = Date.now()
    let conn: BackendConnection | undefined
    try {
      conn = await this.#openShared(started)
      const signal = AbortSignal.timeout(operational.discoveryTimeout)
      // One deadline spans every page of every list, each request adding a listener.
      setMaxListeners(0, signal)
      const catalog = await discoverCatalog(conn.client, { signal, timeout: operational.discoveryTimeout })
      if (this.#stopped) {
        await conn.close()
        return
      }
      this.shared = conn
      this.catalog = catalog
      // The shared connection keeps the catalog current (2026-07-28: on a listen stream).
      await conn.watchLists().catch((err: unknown) => {
        logger.warn({ backend: this.name, err: errorText(err) }, 'cannot listen for list changes')
      })
      // Unique across runtimes: a backend re-added under the same name (hot reload) never
      // matches a connection opened to its predecessor.
      this.generation = ++lastGeneration
      this.health = 'healthy'
      this.lastError = undefined
      this.#attempt = 0
      logger.info(
        {
          backend: this.name,
          transport: this.config.transport,
          tools: catalog.tools.length,
          resources: catalog.resources.length,
          resourceTemplates: catalog.resourceTemplates.length,
          prompts: catalog.prompts.length,
          ms: Date.now() - started,
        },
        'backend connected',
      )
      this.#options.onChange(this)
      if (this.#connectedBefore) this.#options.onReconnect?.(this)
      this.#connectedBefore = true
    } catch (err) {
      await conn?.close()
      this.#markUnhealthy(errorText(err))
      if (this.#supervised) this.#scheduleRestart()
    }
  }

  async #openShared(started: number): Promise<BackendConnection> {
    // Every (re)connect probes the era: a backend that restarted may be of the other one now
    // (its binary replaced under the same command, for a stdio process). A stdio probe costs no
    // extra process: the probed process is the one that serves, in either era.
    const open = () =>
      this.openConnection(
        () => undefined,
        SHARED_CLIENT_CAPABILITIES,
        { ...this.#options.sink, closed: (c) => this.#onSharedClosed(c) },
        true,
      )
    if (!this.#launcher) return open()
    if (!this.#launcher.running) {
      // Another process on the launch port would answer in place of ours (typically one orphaned
      // by an earlier vmcp): say so instead of connecting to it or looping on our child's exit.
      const at = launchAddress(this.config)
      if (at && (await portTaken(at))) throw new Error(portInUse(at.port))
    }
    this.#launcher.ensure()
    // A process just launched needs a moment before it listens: retry refused connections
    // until the discovery deadline.
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        return await open()
      } catch (err) {
        // The process ended (or never spawned): its own reason, at once, not the deadline's.
        if (!this.#launcher.running) throw new Error(this.#launcher.failure ?? 'launched process exited')
        const refused = errorText(err).includes('ECONNREFUSED')
        const late = Date.now() - started + delay > this.#options.operational.discoveryTimeout
        if (!refused || late) throw err
        await new Promise((r) => setTimeout(r, delay))
      }
    }
  }

  /** A probe's verdict: logged when it is the first for this backend, or differs from the last. */
  #adoptEra(verdict: EraVerdict): void {
    const was = this.eraVerdict
    this.eraVerdict = verdict
    if (!was) {
      this.#options.logger.info({ backend: this.name, era: verdict.era }, 'backend protocol era')
    } else if (was.era !== verdict.era || was.servesLegacy !== verdict.servesLegacy) {
      this.#options.logger.info(
        { backend: this.name, was: was.era, now: verdict.era, servesLegacy: verdict.servesLegacy },
        'backend protocol era changed',
      )
    }
  }

  #onSharedClosed(conn: BackendConnection): void {
    if (conn !== this.shared || this.#stopped) return
    this.shared = undefined
    const said = conn.stderr.text()
    this.#markUnhealthy(this.sharesConnection ? `process exited${said ? `: ${said}` : ''}` : 'connection closed')
    if (this.sharesConnection) this.#scheduleRestart()
  }

  #scheduleRestart(): void {
    if (this.#stopped || this.#retryTimer) return
    const delay = this.#nextBackoff()
    this.#options.logger.info({ backend: this.name, delayMs: delay, restarts: this.restarts }, 'restarting backend process')
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      void this.#connect()
    }, delay)
    this.#retryTimer.unref()
  }

  /** Exponential backoff with jitter (half to all of the step), capped; counts the restart. */
  #nextBackoff(): number {
    const step = Math.min(BACKOFF_BASE_MS * 2 ** this.#attempt, BACKOFF_MAX_MS)
    this.#attempt++
    this.restarts++
    return Math.round(step / 2 + Math.random() * (step / 2))
  }

  #scheduleRelaunch(reason: string): void {
    if (this.#stopped || this.#retryTimer) return
    const delay = this.#nextBackoff()
    this.#options.logger.warn({ backend: this.name, reason, delayMs: delay }, 'launched backend exited; restarting')
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#launcher?.ensure()
    }, delay)
    this.#retryTimer.unref()
  }

  #markUnhealthy(reason: string): void {
    const was = this.health
    this.health = 'unhealthy'
    this.lastError = reason
    const level = was === 'unhealthy' ? 'debug' : 'warn'
    this.#options.logger[level]({ backend: this.name, transport: this.config.transport, reason }, 'backend unavailable')
    if (was !== 'unhealthy') this.#options.onChange(this)
  }
}

/** An error's message plus the first system error code found in its cause chain (ECONNREFUSED…). */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  let cause: unknown = err
  for (let depth = 0; depth < 4 && cause && typeof cause === 'object'; depth++) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return `${err.message} (${code})`
    cause = (cause as { cause?: unknown }).cause
  }
  return err.message
}

/** A timeout or the backend's own JSON-RPC error: the backend is there, in the era assumed. */
function showsSameEra(err: unknown): boolean {
  return err instanceof McpError && err.code !== ErrorCode.ConnectionClosed
}

/**
 * The backend answered the connection attempt with an HTTP error (it is up, but refused the
 * handshake of the era we assumed), as opposed to not answering at all (ECONNREFUSED…).
 */
function answered(err: unknown): boolean {
  if (err instanceof StreamableHTTPError) return true
  return !/\(E[A-Z_]+\)$/.test(errorText(err)) && !(err instanceof McpError)
}

/** Where a launched HTTP backend is expected to listen (from its url). */
function launchAddress(config: BackendConfig): { host: string; port: number } | undefined {
  if (config.transport === 'stdio') return undefined
  const url = new URL(config.url)
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) }
}

/** Whether something already accepts connections there. */
function portTaken(at: { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(at)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
