import type { Dispatcher } from 'undici'
import { MODERN_PROTOCOL_VERSIONS } from '../modern/era.js'
import type { CallEntry, RelayCallTable, ReplyChannel } from '../routing/call-table.js'
import {
  isNotification,
  isRequest,
  isResponse,
  REQUEST_CANCELLED,
  type RpcMessage,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
} from '../routing/json-rpc.js'
import { Deadline, DeadlineSweep } from './deadline-sweep.js'
import { renameAnswerId } from './answer-text.js'
import { SseParser } from './sse-parser.js'

/** Methods whose answer is one result: relayed as raw JSON-RPC, without the SDK. */
export const RELAYED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'resources/read',
  'prompts/get',
  'completion/complete',
])

/** This client session's session with one Streamable HTTP backend. */
export interface RelayBackendSession {
  sessionId: string | undefined
  protocolVersion: string | undefined
  /**
   * Closing the request's stream is the cancellation (MCP 2026-07-28 §Cancellation, Streamable
   * HTTP): no `notifications/cancelled` is sent. A 2025 backend needs the notice, since a
   * disconnect is not a cancellation there.
   */
  cancelsByClosing?: boolean
}

/** Where one call is posted: the backend session, and every header of the POST. */
export interface RelayTarget {
  session: RelayBackendSession
  headers: Readonly<Record<string, string>>
}

/** One Streamable HTTP backend as the relay sees it. */
export interface RelayBackend {
  readonly name: string
  readonly url: URL
  /**
   * This client session's backend session, opened when needed. `lost` is one the backend
   * answered 404 for (Streamable HTTP §Session Management): drop it and open a fresh one.
   */
  session(lost?: RelayBackendSession): Promise<RelayBackendSession>
  /**
   * Outgoing credentials and configured headers, computed per request. A relayed call passes
   * its request (a 2026-07-28 backend wants it mirrored in headers).
   */
  headers(signal?: AbortSignal, request?: RpcRequest): Promise<Record<string, string>>
  /**
   * The backend session and complete POST headers of a call (`lost` as for `session`). Returned
   * as they are when nothing needs waiting for (the session is open, the credentials known), the
   * same headers object while they hold. No signal (no AbortController per call): a call stopped
   * while this waits ends when it returns.
   */
  target(lost: RelayBackendSession | undefined, request: RpcRequest): RelayTarget | Promise<RelayTarget>
  /** A call could not reach the backend: let its health check look now. */
  reportFailure(err: unknown): void
  /** List changes and resource updates the backend sent on a call's stream: vmcp's, not the client's. */
  catalogNotification(notification: RpcNotification): void
}

const CATALOG_NOTIFICATIONS: ReadonlySet<string> = new Set([
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
  'notifications/resources/updated',
])

export type RelayFailure = { kind: 'timeout' } | { kind: 'unavailable'; error: unknown }

export interface RelayCallOptions {
  backend: RelayBackend
  /** The request as the backend should see it (tool name rewritten); the id is replaced. */
  request: RpcRequest
  /** How a failure to get the backend's answer reads to the client. */
  failure: (failure: RelayFailure) => RpcResponse
}

const SERVER_REQUEST_PREFIX = 'vmcp-relay-'

interface PendingServerRequest {
  backend: RelayBackend
  session: RelayBackendSession
  backendId: string | number
}

/**
 * Relays request/response methods of one client session to Streamable HTTP backends through
 * the shared undici dispatcher: a vmcp-owned request id, the backend's session id and protocol
 * version, the client's progress token passed through. A JSON answer, or an SSE stream whose
 * first event is the answer, goes back as one `application/json` write; anything else is relayed
 * event by event. Server-to-client requests the backend sends during a call get ids in vmcp's
 * namespace and the client's answers are posted back to the backend session that asked.
 */
export class HttpRelay {
  readonly #dispatcher: Dispatcher
  readonly #table: RelayCallTable
  readonly #callTimeout: number
  readonly #serverRequests = new Map<string, PendingServerRequest>()
  #nextServerRequest = 1

  constructor(options: { dispatcher: Dispatcher; table: RelayCallTable; callTimeout: number }) {
    this.#dispatcher = options.dispatcher
    this.#table = options.table
    this.#callTimeout = options.callTimeout
  }

  /** True when `message` answers a request the relay forwarded to the client. */
  ownsResponse(message: RpcMessage): boolean {
    return isResponse(message) && typeof message.id === 'string' && this.#serverRequests.has(message.id)
  }

  /** The client's answer to an elicitation/sampling/roots request: back to the backend that asked. */
  deliverResponse(message: RpcResponse): void {
    const pending = this.#serverRequests.get(message.id as string)
    if (!pending) return
    this.#serverRequests.delete(message.id as string)
    void this.#notify(pending.backend, pending.session, { ...message, id: pending.backendId })
  }

  /** Starts one relayed call; its answer (or failure) ends `channel`. */
  call(clientRequest: RpcRequest, options: RelayCallOptions, channel: ReplyChannel): void {
    const call = new RelayedCall(this, clientRequest.id, options, channel)
    call.entry = this.#table.begin(clientRequest.id, (_entry, reason, answer) => call.cancel(reason, answer))
    if (channel.closed) return this.#table.abandon(call.entry)
    channel.onClose(() => this.#table.abandon(call.entry as CallEntry))
    call.start()
  }

  /** @internal */
  get dispatcher(): Dispatcher {
    return this.#dispatcher
  }

  /** @internal */
  get callTimeout(): number {
    return this.#callTimeout
  }

  /** @internal */
  end(entry: CallEntry): void {
    this.#table.end(entry)
  }

  /** @internal: a server-to-client request, renamed into vmcp's namespace. */
  serverRequest(backend: RelayBackend, session: RelayBackendSession, request: RpcRequest): RpcRequest {
    const id = `${SERVER_REQUEST_PREFIX}${this.#nextServerRequest++}`
    this.#serverRequests.set(id, { backend, session, backendId: request.id })
    return { ...request, id }
  }

  /** @internal: the renamed id of a backend request still waiting for the client. */
  renamedServerRequest(backend: RelayBackend, backendId: unknown): string | undefined {
    for (const [id, p] of this.#serverRequests) {
      if (p.backend === backend && p.backendId === backendId) return id
    }
    return undefined
  }

  /** @internal: drops the server requests of a call that ended. */
  forgetServerRequests(ids: Iterable<string>): void {
    for (const id of ids) this.#serverRequests.delete(id)
  }

  /** @internal: a notification or response to the backend session (202 expected, body ignored). */
  async #notify(backend: RelayBackend, session: RelayBackendSession, message: RpcMessage): Promise<void> {
    try {
      const res = await this.#dispatcher.request({
        ...targetOf(backend),
        method: 'POST',
        headers: buildPostHeaders(await backend.headers(AbortSignal.timeout(this.#callTimeout)), session),
        body: JSON.stringify(message),
      })
      await res.body.dump()
    } catch {
      // Best effort: a notification that cannot be delivered has no one to report to.
    }
  }

  /** @internal */
  notify(backend: RelayBackend, session: RelayBackendSession, message: RpcMessage): Promise<void> {
    return this.#notify(backend, session, message)
  }
}

/**
 * A POST's headers to a backend session: the credentials and configured headers, then content
 * negotiation (Streamable HTTP §Sending Messages to the Server) and the session's id and
 * protocol version (§Session Management, §Protocol Version Header).
 */
export function buildPostHeaders(
  credentials: Readonly<Record<string, string>>,
  session: RelayBackendSession,
): Record<string, string> {
  const headers: Record<string, string> = {
    ...credentials,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  }
  if (session.sessionId) headers['mcp-session-id'] = session.sessionId
  if (session.protocolVersion) headers['mcp-protocol-version'] = session.protocolVersion
  return headers
}

const targets = new WeakMap<RelayBackend, { origin: string; path: string }>()

/** Where a backend's POSTs go, worked out from its URL once. */
function targetOf(backend: RelayBackend): { origin: string; path: string } {
  let target = targets.get(backend)
  if (!target) {
    target = { origin: backend.url.origin, path: backend.url.pathname + backend.url.search }
    targets.set(backend, target)
  }
  return target
}

class SessionLostError extends Error {
  constructor(readonly session: RelayBackendSession) {
    super('backend session not found')
  }
}

// How often call deadlines are checked: a call times out between callTimeout and this later.
const DEADLINE_TICK_MS = 100

/** The deadlines of every relayed call in the process. */
const deadlines = new DeadlineSweep(DEADLINE_TICK_MS)

/** One client call on its way through the relay. */
class RelayedCall extends Deadline {
  entry: CallEntry | undefined
  readonly #relay: HttpRelay
  readonly #clientId: string | number
  readonly #options: RelayCallOptions
  readonly #channel: ReplyChannel
  #serverRequests: Set<string> | undefined
  #backendId = ''
  #session: RelayBackendSession | undefined
  #post: BackendPost | undefined
  #reopened = false
  #done = false

  constructor(relay: HttpRelay, clientId: string | number, options: RelayCallOptions, channel: ReplyChannel) {
    super()
    this.#relay = relay
    this.#clientId = clientId
    this.#options = options
    this.#channel = channel
  }

  /** Answered, failed or stopped: whatever the backend still sends is read and dropped. */
  get done(): boolean {
    return this.#done
  }

  /** Starts the call: its answer, its failure or its stop ends the client's reply channel. */
  start(): void {
    this.#armTimer()
    this.#exchange(undefined)
  }

  /** The client cancelled or went away, or the session closed. */
  cancel(reason: string, answer: boolean): void {
    if (this.#done) return
    this.#stop(reason)
    if (answer) {
      this.#channel.finish({
        jsonrpc: '2.0',
        id: this.#clientId,
        error: { code: REQUEST_CANCELLED, message: 'Request cancelled' },
      })
    }
  }

  /** The deadline passed (see {@link DeadlineSweep}). */
  expire(): void {
    if (this.#done) return
    this.#stop('timed out')
    this.#channel.finish({ ...this.#options.failure({ kind: 'timeout' }), id: this.#clientId })
  }

  /** Posts the request, at once when the backend's target is known without waiting. */
  #exchange(lost: RelayBackendSession | undefined): void {
    let target: RelayTarget | Promise<RelayTarget>
    try {
      target = this.#options.backend.target(lost, this.#options.request)
    } catch (err) {
      return this.failed(undefined, err)
    }
    if (target instanceof Promise) {
      target.then(
        (t) => this.#send(t, lost),
        (err: unknown) => this.failed(undefined, err),
      )
    } else this.#send(target, lost)
  }

  #send(target: RelayTarget, lost: RelayBackendSession | undefined): void {
    if (this.#done) return
    const { backend, request } = this.#options
    this.#session = target.session
    this.#backendId = `vmcp-${(this.entry as CallEntry).internalId}${lost ? 'r' : ''}`
    const post = new BackendPost(this, target.session)
    this.#post = post
    const { origin, path } = targetOf(backend)
    const body = JSON.stringify({ ...request, id: this.#backendId })
    try {
      this.#relay.dispatcher.dispatch({ origin, path, method: 'POST', headers: target.headers, body }, post)
    } catch (err) {
      this.failed(post, err)
    }
  }

  /**
   * The exchange through `post` ended without an answer (no `post`: the backend could not be
   * asked). Late reports of an exchange already replaced or ended are ignored.
   */
  failed(post: BackendPost | undefined, err: unknown): void {
    if (this.#done || post !== this.#post) return
    // Streamable HTTP §Session Management: 404 means the backend dropped our session (it
    // restarted or expired it). Open a fresh one and try once more.
    if (err instanceof SessionLostError && !this.#reopened) {
      this.#reopened = true
      this.#post = undefined
      return this.#exchange(err.session)
    }
    this.#options.backend.reportFailure(err)
    this.#finish(this.#options.failure({ kind: 'unavailable', error: err }))
  }

  /**
   * One JSON-RPC message from the backend (a JSON body, or one SSE event's data); `text` is the
   * JSON it was parsed from, so the answer reaches the client without a second serialization.
   */
  onMessage(message: RpcMessage, text?: string): void {
    if (this.#done) return
    if (isResponse(message)) {
      if (message.id !== this.#backendId) return
      this.#finish(message, text)
      return
    }
    const { backend } = this.#options
    if (isRequest(message)) {
      // Elicitation, sampling, roots: the client answers under vmcp's id (see deliverResponse).
      const renamed = this.#relay.serverRequest(backend, this.#session as RelayBackendSession, message)
      ;(this.#serverRequests ??= new Set()).add(renamed.id as string)
      this.#channel.event(renamed)
      return
    }
    if (!isNotification(message)) return
    if (CATALOG_NOTIFICATIONS.has(message.method)) return backend.catalogNotification(message)
    if (message.method === 'notifications/progress') this.#armTimer()
    if (message.method === 'notifications/cancelled') {
      // The backend gave up on a request it sent the client: name it as the client knows it.
      const renamed = this.#relay.renamedServerRequest(backend, message.params?.requestId)
      if (renamed === undefined) return
      this.#channel.event({ ...message, params: { ...message.params, requestId: renamed } })
      return
    }
    this.#channel.event(message)
  }

  #armTimer(): void {
    deadlines.arm(this, this.#relay.callTimeout)
  }

  #finish(answer: RpcResponse, text?: string): void {
    if (this.#done) return
    this.#settle()
    const raw = text === undefined ? undefined : renameAnswerId(text, this.#backendId, this.#clientId)
    // The answer is this call's own (parsed from the backend's text, or made for a failure):
    // renamed for the client in place, not copied.
    answer.id = this.#clientId
    this.#channel.finish(answer, undefined, raw)
  }

  /** Done: no deadline, no server requests to route back, no call-table entry. */
  #settle(): void {
    this.#done = true
    deadlines.disarm(this)
    if (this.#serverRequests) this.#relay.forgetServerRequests(this.#serverRequests)
    if (this.entry) this.#relay.end(this.entry)
  }

  /** Stops the backend call: abort the HTTP exchange, and tell the backend when it needs telling (MCP cancellation). */
  #stop(reason: string): void {
    this.#settle()
    this.#post?.abort()
    const session = this.#session
    if (session && this.#backendId && !session.cancelsByClosing) {
      void this.#relay.notify(this.#options.backend, session, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: this.#backendId, reason },
      })
    }
  }
}

// Enough of an error body to say what went wrong.
const ERROR_TEXT_MAX = 200

/**
 * One POST to the backend, read through undici's handler callbacks: no Readable body, no
 * AbortSignal, no promise per chunk. An `application/json` body is parsed when complete; an
 * event stream is parsed as it arrives, each event handed to the call at once.
 */
class BackendPost implements Dispatcher.DispatchHandler {
  readonly #call: RelayedCall
  readonly #session: RelayBackendSession
  #controller: Dispatcher.DispatchController | undefined
  #aborted = false
  #status = 0
  #parser: SseParser | undefined
  #chunks: Buffer[] = []

  constructor(call: RelayedCall, session: RelayBackendSession) {
    this.#call = call
    this.#session = session
  }

  /** Stops the exchange (the connection is closed; undici reports the abort, which is ignored). */
  abort(): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#controller?.abort(new Error('relayed call stopped'))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#aborted) controller.abort(new Error('relayed call stopped'))
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, unknown>): void {
    this.#status = status
    const type = headers['content-type']
    if (status >= 200 && status < 300 && typeof type === 'string' && type.startsWith('text/event-stream')) {
      this.#parser = new SseParser((data) => this.#call.onMessage(JSON.parse(data) as RpcMessage, data))
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const parser = this.#parser
    if (!parser) {
      this.#chunks.push(chunk)
      return
    }
    // Read to the end even once answered: the backend closes the stream after its answer, and
    // stopping early would close the connection for nothing.
    if (this.#call.done) return
    try {
      parser.push(chunk)
    } catch (err) {
      this.#call.failed(this, err)
      controller.abort(err as Error)
    }
  }

  onResponseEnd(): void {
    const status = this.#status
    if (status === 404 && this.#session.sessionId) return this.#fail(new SessionLostError(this.#session))
    if (status < 200 || status >= 300) {
      // MCP 2026-07-28 answers some JSON-RPC errors with a 4xx status (-32021 with 400): the
      // error for this request is the backend's answer, not a failure to reach it. (A 2025
      // request refused so is a failure: the backend may have changed era.)
      const version = this.#session.protocolVersion
      const modern = version !== undefined && MODERN_PROTOCOL_VERSIONS.includes(version)
      if (modern && status >= 400 && status < 500 && this.#answersWithError()) return
      const text = this.#text().slice(0, ERROR_TEXT_MAX)
      return this.#fail(new Error(`HTTP ${status}${text ? `: ${text}` : ''}`))
    }
    if (!this.#parser) {
      try {
        const text = this.#text()
        this.#call.onMessage(JSON.parse(text) as RpcMessage, text)
      } catch (err) {
        return this.#fail(err)
      }
    }
    if (this.#call.done) return
    this.#fail(new Error(this.#parser ? 'backend closed the event stream before answering' : 'backend reply did not answer the request'))
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.#fail(err)
  }

  #fail(err: unknown): void {
    this.#call.failed(this, err)
  }

  /** Whether a JSON body answered the call with a JSON-RPC error (then handed to it). */
  #answersWithError(): boolean {
    let message: unknown
    try {
      message = JSON.parse(this.#text())
    } catch {
      return false
    }
    const m = message as { error?: unknown; id?: unknown } | null
    if (typeof m !== 'object' || m === null || typeof m.error !== 'object' || m.id == null) return false
    this.#call.onMessage(message as RpcMessage)
    return this.#call.done
  }

  #text(): string {
    const chunks = this.#chunks
    return (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString('utf8')
  }
}
