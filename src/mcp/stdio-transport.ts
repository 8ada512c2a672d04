import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import { StdioClientTransport as LegacyStdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
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
