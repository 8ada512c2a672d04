import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import { StdioClientTransport as LegacyStdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import type { Stream } from 'node:stream'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { trackChild } from './children.js'

/** How long a probe process that turned out to be 2025 gets to exit on SIGTERM before SIGKILL. */
const REAP_GRACE_MS = 1000

/** What both SDK lines' stdio transports have in common, as far as tracking needs. */
type StdioTransportClass = abstract new (...args: any[]) => {
  start(): Promise<void>
  readonly pid: number | null
  onclose?: (() => void) | undefined
}

/**
 * A stdio transport whose process is tracked in children.ts from spawn to exit, so that it
 * never outlives vmcp (not only once its handshake completed).
 */
function tracked<T extends StdioTransportClass>(Base: T) {
  abstract class Tracked extends Base {
    #forget: (() => void) | undefined
    #exited = false
    readonly #exit: Promise<void>

    constructor(...args: any[]) {
      super(...args)
      let exited = () => {}
      this.#exit = new Promise<void>((resolve) => {
        exited = resolve
      })
      // Set before connect: both SDK lines' clients (and the v2 probe window) chain it.
      this.onclose = () => {
        this.#exited = true
        this.#forget?.()
        this.#forget = undefined
        exited()
      }
    }

    override async start(): Promise<void> {
      await super.start()
      const pid = this.pid
      if (pid !== null) this.#forget = trackChild(pid)
    }

    /** Whether the process has exited, waiting up to `ms` for it. */
    exited(ms: number): Promise<boolean> {
      return Promise.race([
        this.#exit.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(this.#exited), ms).unref()),
      ])
    }
  }
  return Tracked
}

/** The v1 SDK's stdio transport (a 2025 backend), tracked from spawn. */
export class LegacyStdioTransport extends tracked(LegacyStdioClientTransport) {}

/**
 * The v2 SDK's stdio transport, tracked from spawn.
 *
 * A subclass on purpose. Given the SDK's base class, the v2 client's `auto` negotiation runs its
 * `server/discover` probe on a short-lived sibling process that it spawns and reaps itself, which
 * vmcp could neither see nor track (a hard exit of vmcp during the probe would orphan it). A
 * subclass is probed in place: the process it starts is the one the verdict is about.
 */
export class BackendStdioTransport extends tracked(StdioClientTransport) {
  /**
   * Ends the process at once (SIGTERM, SIGKILL after a short grace): for a probe whose backend
   * turned out to be 2025, which gets a fresh process on the v1 client. Resolves once it exited.
   */
  async reap(): Promise<void> {
    const pid = this.pid
    if (pid === null) return
    signal(pid, 'SIGTERM')
    if (await this.exited(REAP_GRACE_MS)) return
    signal(pid, 'SIGKILL')
    await this.exited(REAP_GRACE_MS)
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // Already gone.
  }
}

/** What a 2025 server answered the probe's `initialize` (MCP 2025-11-25 §Lifecycle). */
export interface InitializeAnswer {
  protocolVersion: string
  capabilities: Record<string, unknown>
  serverInfo: { name: string; version: string }
  instructions?: string
}

/**
 * The probe's process, handed to the v1 client once the probe found a 2025 server: no second
 * process is started (and no startup side effect runs twice). The v2 client's `auto` probe has
 * already completed the 2025 handshake on it, so this transport answers the v1 client's
 * `initialize` with what the server answered the probe and keeps its `notifications/initialized`
 * (the server had it from the probe); everything else passes through to the same process.
 * Messages the server sends before the v1 client is ready wait, in order.
 */
export class AdoptedStdioTransport implements Transport {
  onclose?: (() => void) | undefined
  onerror?: ((error: Error) => void) | undefined
  onmessage?: ((message: JSONRPCMessage) => void) | undefined
  readonly #process: BackendStdioTransport
  readonly #answer: InitializeAnswer
  /** Server messages held until the v1 handshake is done; undefined once it is. */
  #held: JSONRPCMessage[] | undefined = []

  constructor(process: BackendStdioTransport, answer: InitializeAnswer) {
    this.#process = process
    this.#answer = answer
    // Taken over from the probe's client, synchronously after its connect resolved, so no
    // message of the server's can reach that client in between.
    const probeClosed = process.onclose
    process.onclose = () => {
      probeClosed?.()
      this.onclose?.()
    }
    process.onerror = (err) => this.onerror?.(err)
    process.onmessage = (message) => {
      if (this.#held) this.#held.push(message as JSONRPCMessage)
      else this.onmessage?.(message as JSONRPCMessage)
    }
  }

  get stderr(): Stream | null {
    return this.#process.stderr
  }

  /** The process is running already (the probe started it). */
  async start(): Promise<void> {}

  async send(message: JSONRPCMessage): Promise<void> {
    if ('method' in message && message.method === 'initialize' && 'id' in message) {
      const answer: JSONRPCMessage = { jsonrpc: '2.0', id: message.id, result: { ...this.#answer } }
      queueMicrotask(() => this.onmessage?.(answer))
      return
    }
    if ('method' in message && message.method === 'notifications/initialized' && !('id' in message)) {
      const held = this.#held ?? []
      this.#held = undefined
      queueMicrotask(() => {
        for (const m of held) this.onmessage?.(m)
      })
      return
    }
    await this.#process.send(message as never)
  }

  async close(): Promise<void> {
    await this.#process.close()
  }
}
