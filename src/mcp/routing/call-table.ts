import type { CallStat } from '../../metrics/index.js'
import type { RpcMessage } from './json-rpc.js'

/** A JSON-RPC request id as the client chose it. */
export type ClientRequestId = string | number

/**
 * Where one client request's traffic goes: the HTTP response of the POST that carried it. A
 * single final answer is written as one `application/json` body; anything before it (progress,
 * logs, server-to-client requests) switches the reply to SSE.
 */
export interface ReplyChannel {
  /** The client went away before the answer. */
  readonly closed: boolean
  /** A message before the final answer (switches the reply to SSE). */
  event(message: RpcMessage): void
  /**
   * The final answer; ends the reply. `status`: the HTTP status of a lone JSON answer (default
   * 200; an answer after events goes on the open SSE stream). `text`: `message` as JSON already,
   * written as it is by a channel that writes JSON.
   */
  finish(message: RpcMessage, status?: number, text?: string): void
  /** Called once if the client disconnects before `finish`. */
  onClose(listener: () => void): void
  /**
   * Set by the session before the request is served: the channel records the answer (or the
   * client's disconnect) and its latency on it.
   */
  stat?: CallStat | undefined
}

/** One client request in flight, whichever path (SDK or relay) serves it. */
export interface CallEntry {
  readonly clientId: ClientRequestId
  /** vmcp's own id for this call: unique in the session, never reused. */
  readonly internalId: number
  /** Set once the call is over for the client (answered, cancelled, abandoned). */
  settled: boolean
  /** The client itself sent notifications/cancelled for this call. */
  clientCancelled: boolean
}

/**
 * Stops a call's work. `answer` is true when the client may still be listening on the call's
 * reply (a cancellation that may have been meant for an earlier call with the same id): the
 * path then ends the reply with an error instead of leaving it open.
 */
export type CancelCall = (entry: CallEntry, reason: string, answer: boolean) => void

/** What the relay needs of a table: calls numbered by vmcp, ended, or abandoned by the client. */
export type RelayCallTable = Pick<CallTable, 'begin' | 'end' | 'abandon'>

/**
 * The calls of callers without a session (MCP 2026-07-28 stateless requests). Each request is
 * its own call: a caller cancels by closing its stream, never by id, and two callers may use
 * the same id, so nothing maps client ids and no cancellation is owed. Nothing is kept per call
 * beyond its entry: a process-wide {@link CallTable} that took and dropped every such call in
 * its Maps cost 2026-07-28 calls through the relay about 14 µs of garbage collection per call
 * at 32 concurrent calls (198 → 151 µs of CPU per call, `--cpu-prof`).
 */
export class StatelessCallTable implements RelayCallTable {
  #next = 1

  begin(clientId: ClientRequestId, cancel: CancelCall): CallEntry {
    // The stop travels on the entry itself: a process-wide WeakMap would churn as a Map does.
    const entry: StatelessEntry = {
      clientId,
      internalId: this.#next++,
      settled: false,
      clientCancelled: false,
      cancel,
    }
    return entry
  }

  end(entry: CallEntry): void {
    entry.settled = true
  }

  abandon(entry: CallEntry, reason = 'client disconnected'): void {
    if (entry.settled) return
    entry.settled = true
    ;(entry as StatelessEntry).cancel(entry, reason, false)
  }
}

interface StatelessEntry extends CallEntry {
  readonly cancel: CancelCall
}

// Cancellations owed by calls that ended without one; bounded so a client cannot grow it.
const MAX_CREDITS = 1024

/**
 * The client request ids of one session, mapped to vmcp-owned calls.
 *
 * JSON-RPC ids are the client's: MCP says they are never reused in a session, but retrying
 * clients reuse them after aborting a call. Keying in-flight work by the client's id then
 * mixes calls up: an abandoned call's late answer lands on its successor's stream, a stale
 * request that arrives after its retry takes the retry's place, and the
 * `notifications/cancelled` the client sent for the abandoned call cancels the retry, which
 * then never answers. So every call gets its own internal id and its own reply channel; the
 * client id only names the call a cancellation is for, and the cancellation a client owes for
 * a call that already went away (its HTTP stream closed) is consumed by that call instead of
 * hitting its successor.
 */
export class CallTable {
  #next = 1
  // The live calls, newest first, linked through their entries: no per-call Map entry to add
  // and delete, by internal id or by client id (a session's busiest Maps at 32 concurrent calls).
  // A cancellation walks them to find its call: a session has a few calls in flight, each an
  // open request of its own, and a cancellation is rare.
  #newest: LiveEntry | undefined = undefined
  #size = 0
  readonly #credits = new Map<ClientRequestId, number>()

  /** Calls in flight. */
  get size(): number {
    return this.#size
  }

  /** Registers a client request; its work stops through `cancel`. */
  begin(clientId: ClientRequestId, cancel: CancelCall): CallEntry {
    const newest = this.#newest
    const entry: LiveEntry = {
      clientId,
      internalId: this.#next++,
      settled: false,
      clientCancelled: false,
      cancel,
      newer: undefined,
      older: newest,
    }
    if (newest) newest.newer = entry
    this.#newest = entry
    this.#size++
    return entry
  }

  /** The call was answered (or failed) normally. */
  end(entry: CallEntry): void {
    this.#forget(entry as LiveEntry)
  }

  /** The client went away (its HTTP stream closed before the answer): stop the work. */
  abandon(entry: CallEntry, reason = 'client disconnected'): void {
    if (entry.settled) return
    this.#forget(entry as LiveEntry)
    // The client may still send notifications/cancelled for it: that one is owed to this call.
    if (!entry.clientCancelled) this.#owe(entry.clientId)
    ;(entry as LiveEntry).cancel(entry, reason, false)
  }

  /**
   * MCP cancellation: `notifications/cancelled` from the client. A cancellation still owed by
   * a call that went away is consumed by it; otherwise the latest live call with the id stops.
   */
  cancelFromClient(clientId: ClientRequestId, reason: string): void {
    const owed = this.#credits.get(clientId)
    if (owed !== undefined) {
      if (owed <= 1) this.#credits.delete(clientId)
      else this.#credits.set(clientId, owed - 1)
      return
    }
    let entry = this.#newest
    while (entry && entry.clientId !== clientId) entry = entry.older
    if (!entry) return
    entry.clientCancelled = true
    this.#forget(entry)
    entry.cancel(entry, reason, true)
  }

  /** Ends every call (session closed). */
  clear(reason: string): void {
    const entries: LiveEntry[] = []
    for (let e = this.#newest; e; e = e.older) entries.push(e)
    for (const e of entries) this.#forget(e)
    this.#credits.clear()
    for (const entry of entries.reverse()) entry.cancel(entry, reason, false)
  }

  /** Settles a live call and takes it out of the table (once). */
  #forget(entry: LiveEntry): void {
    if (entry.settled) return
    entry.settled = true
    const { newer, older } = entry
    if (newer) newer.older = older
    else this.#newest = older
    if (older) older.newer = newer
    entry.newer = entry.older = undefined
    this.#size--
  }

  #owe(clientId: ClientRequestId): void {
    if (!this.#credits.has(clientId) && this.#credits.size >= MAX_CREDITS) {
      const oldest = this.#credits.keys().next().value
      if (oldest !== undefined) this.#credits.delete(oldest)
    }
    this.#credits.set(clientId, (this.#credits.get(clientId) ?? 0) + 1)
  }
}

/** A call in a session's table: its stop, and its place in the list of live calls. */
interface LiveEntry extends CallEntry {
  readonly cancel: CancelCall
  newer: LiveEntry | undefined
  older: LiveEntry | undefined
}
