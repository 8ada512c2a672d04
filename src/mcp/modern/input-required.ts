import { randomUUID } from 'node:crypto'
import type { ServerContext } from '@modelcontextprotocol/server'
import { ErrorCode, McpError, type Request, type Result } from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from '../../log/index.js'
import { RequestStateCodec, RequestStateError, type RequestStateClaims } from './request-state.js'

/** How a backend call made for a 2026-07-28 caller reaches back to that caller while it runs. */
export interface CallIo {
  /** The backend asks for input (a 2025 backend's elicitation, sampling or roots request). */
  ask(request: Request, signal: AbortSignal): Promise<Result>
  /** Ends the backend call: the client went away, or the hold expired. */
  readonly signal: AbortSignal
  /** The request leg the client is waiting on now (progress goes there). */
  leg(): ServerContext
}

/** What a retry carries back to a 2026-07-28 backend: the client's answers and its own state. */
export interface BackendRetry {
  inputResponses?: Record<string, unknown>
  requestState?: string
}

export interface InteractionRequest {
  callerKey: string
  backend: string
  /** `tools/call`, `prompts/get` or `resources/read`. */
  method: string
  /** The exposed tool or prompt name, or the resource URI. */
  target: string
  ctx: ServerContext
  /** Sends the request to the backend (once per fresh call or backend retry). */
  start: (io: CallIo, retry?: BackendRetry) => Promise<Result>
}

export interface InteractionsOptions {
  logger: Logger
  /** How long a backend call may wait for the client's answer, and a requestState lives. */
  holdTimeout: number
  /** Held calls at once, in this process. */
  maxHolds: number
  /** Held calls at once, per caller. */
  maxHoldsPerCaller: number
  /** The key sealing requestState (absent: per process) and the server it is for. */
  requestState: { key?: Uint8Array | undefined; audience: string }
}

const MIN_STATE_TTL_SECONDS = 600

type InputRequests = Record<string, { method: string; params?: Record<string, unknown> }>
type Outcome =
  { kind: 'result'; result: Result } | { kind: 'error'; error: unknown } | { kind: 'input' }

interface Ask {
  request: Request
  resolve: (result: Result) => void
  reject: (err: unknown) => void
}

// Client capabilities a 2025 backend's request needs (MCP 2025-11-25 §Client Features).
const NEEDS: Record<string, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
}

/**
 * One backend call for a 2026-07-28 caller that may stop to ask for input. A 2025 backend asks
 * by sending a request and waiting for its answer; the caller has no channel for that, so the
 * call is held open here, the caller gets `input_required`, and its retry answers the request.
 */
class HeldCall {
  readonly id = randomUUID()
  readonly controller = new AbortController()
  round = 0
  #leg: ServerContext
  #seq = 0
  readonly #asks = new Map<string, Ask>()
  #settled: Outcome | undefined
  #wake: (() => void) | undefined
  #detach: (() => void) | undefined
  timer: NodeJS.Timeout | undefined

  constructor(
    readonly callerKey: string,
    leg: ServerContext,
  ) {
    this.#leg = leg
  }

  get io(): CallIo {
    return {
      ask: (request, signal) => this.#ask(request, signal),
      signal: this.controller.signal,
      leg: () => this.#leg,
    }
  }

  /** Follows the backend call's promise. */
  track(call: Promise<Result>): void {
    call.then(
      (result) => this.#settle({ kind: 'result', result }),
      (error: unknown) => this.#settle({ kind: 'error', error }),
    )
  }

  /** The client is waiting on `leg`: closing its stream ends the call. */
  attach(leg: ServerContext): void {
    this.#detach?.()
    this.#leg = leg
    const signal = leg.mcpReq.signal
    const onAbort = () => this.cancel('the client closed the request')
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    this.#detach = () => signal.removeEventListener('abort', onAbort)
  }

  /** The leg answered: from now on only a retry or the hold's expiry moves the call. */
  detach(): void {
    this.#detach?.()
    this.#detach = undefined
  }

  /** The backend's requests still waiting for an answer, keyed as the caller sees them. */
  pending(): InputRequests {
    const out: InputRequests = {}
    for (const [key, ask] of this.#asks) out[key] = inBand(ask.request)
    return out
  }

  /** Hands the caller's answers to the backend requests they name; others keep waiting. */
  answer(responses: Record<string, unknown> | undefined): void {
    for (const [key, ask] of [...this.#asks]) {
      if (!responses || !(key in responses)) continue
      this.#asks.delete(key)
      ask.resolve(responses[key] as Result)
    }
  }

  /** Resolves when the call ends or has a request the caller must answer. */
  async next(): Promise<Outcome> {
    for (;;) {
      if (this.#settled) return this.#settled
      if (this.#asks.size > 0) return { kind: 'input' }
      await new Promise<void>((resolve) => (this.#wake = resolve))
    }
  }

  /** Ends the call: waiting backend requests fail, the backend call is cancelled. */
  cancel(reason: string): void {
    clearTimeout(this.timer)
    this.detach()
    for (const ask of this.#asks.values())
      ask.reject(new McpError(ErrorCode.InvalidRequest, reason))
    this.#asks.clear()
    this.controller.abort(new McpError(ErrorCode.RequestTimeout, reason))
  }

  /** Refuses every waiting backend request (the caller cannot take them). */
  refuseAll(message: string): void {
    for (const ask of this.#asks.values())
      ask.reject(new McpError(ErrorCode.InvalidRequest, message))
    this.#asks.clear()
  }

  #ask(request: Request, signal: AbortSignal): Promise<Result> {
    const need = NEEDS[request.method]
    const declared = this.#leg.mcpReq.envelope?.[
      'io.modelcontextprotocol/clientCapabilities' as never
    ] as Record<string, unknown> | undefined
    if (!need || !declared?.[need])
      return Promise.reject(
        new McpError(
          ErrorCode.InvalidRequest,
          `${request.method} cannot be relayed: the 2026-07-28 client did not declare ${need ?? 'it'}`,
        ),
      )
    return new Promise<Result>((resolve, reject) => {
      const key = `input_${++this.#seq}`
      this.#asks.set(key, { request, resolve, reject })
      signal.addEventListener(
        'abort',
        () => {
          if (this.#asks.delete(key)) reject(signal.reason)
        },
        { once: true },
      )
      this.#wake?.()
    })
  }

  #settle(outcome: Outcome): void {
    this.#settled = outcome
    this.#wake?.()
  }
}

/** A 2025 backend request as an in-band input request of MCP 2026-07-28 (no JSON-RPC framing). */
function inBand(request: Request): { method: string; params?: Record<string, unknown> } {
  const params = { ...(request.params ?? {}) } as Record<string, unknown>
  delete params._meta
  // 2026-07-28 URL elicitation has no elicitationId: the retry correlates it (here, by key).
  if (request.method === 'elicitation/create') delete params.elicitationId
  return { method: request.method, params }
}

function isInputRequired(result: Result): result is Result & {
  resultType: 'input_required'
  inputRequests?: InputRequests
  requestState?: string
} {
  return (result as { resultType?: unknown }).resultType === 'input_required'
}

/**
 * Input during a call for 2026-07-28 callers, both ways (MCP 2026-07-28 §Multi Round-Trip
 * Requests):
 * - a 2026-07-28 backend's `input_required` goes to the caller with vmcp's own signed
 *   `requestState` wrapping the backend's; the retry is opened, checked and sent back to that
 *   backend with the backend's state unwrapped;
 * - a 2025 backend's pushed request (elicitation, sampling, roots) holds its call open here
 *   under a signed, expiring `requestState`; the retry answers it and continues the call.
 * Held calls are bounded in number and time; a retry that finds no hold fails at once.
 */
export class Interactions {
  readonly codec: RequestStateCodec
  readonly #holds = new Map<string, HeldCall>()
  readonly #options: InteractionsOptions

  constructor(options: InteractionsOptions) {
    this.#options = options
    // A person answers the questions: ten minutes at least (a held call still ends with its
    // own hold; its state then names a call that is gone).
    const ttlSeconds = Math.max(MIN_STATE_TTL_SECONDS, Math.ceil(options.holdTimeout / 1000))
    const { key, audience } = options.requestState
    this.codec = new RequestStateCodec({ ...(key ? { key } : {}), audience, ttlSeconds })
  }

  /** Calls held open now (for tests and status). */
  get held(): number {
    return this.#holds.size
  }

  /** Runs one multi round-trip capable request: a fresh call, or the retry of an earlier one. */
  async run(req: InteractionRequest): Promise<Result> {
    const token = req.ctx.mcpReq.requestState<string>()
    const inputResponses = req.ctx.mcpReq.inputResponses
    // Answers without state go to the backend as they are (a stateless backend's round trip).
    if (token === undefined)
      return this.#fresh(req, inputResponses ? { inputResponses } : undefined)
    if (typeof token !== 'string')
      throw new RequestStateError('malformed', 'requestState is malformed')
    const claims = await this.codec.open(token, req.callerKey, req.method, req.target)
    if (claims.backend !== req.backend)
      throw new RequestStateError(
        'request',
        `requestState belongs to backend "${claims.backend}", but ${req.target} is now served by "${req.backend}"`,
      )
    if (claims.hold !== undefined) return this.#resume(req, claims)
    // A 2026-07-28 backend's own state: the backend checks it; vmcp only carries it.
    const retry: BackendRetry = {}
    if (inputResponses) retry.inputResponses = inputResponses
    if (claims.state !== undefined) retry.requestState = claims.state
    return this.#fresh(req, retry)
  }

  close(): void {
    for (const hold of this.#holds.values()) hold.cancel('vmcp is shutting down')
    this.#holds.clear()
  }

  async #fresh(req: InteractionRequest, retry?: BackendRetry): Promise<Result> {
    const call = new HeldCall(req.callerKey, req.ctx)
    call.attach(req.ctx)
    call.track(req.start(call.io, retry))
    return this.#answer(req, call)
  }

  async #resume(req: InteractionRequest, claims: RequestStateClaims): Promise<Result> {
    const call = claims.hold === undefined ? undefined : this.#holds.get(claims.hold)
    if (!call || call.callerKey !== req.callerKey)
      throw new RequestStateError(
        'gone',
        'the call this requestState continues is no longer held by this server (it expired, or another instance issued it); send the request again without requestState',
      )
    if (claims.round !== call.round)
      throw new RequestStateError('stale', 'requestState was already answered; use the latest one')
    call.round++
    call.attach(req.ctx)
    call.answer(req.ctx.mcpReq.inputResponses)
    return this.#answer(req, call)
  }

  /** Waits for the call's next step and answers this leg with it. */
  async #answer(req: InteractionRequest, call: HeldCall): Promise<Result> {
    let outcome = await call.next()
    if (outcome.kind === 'input' && !this.#hold(call)) {
      call.refuseAll('vmcp holds too many calls waiting for input; try again later')
      outcome = await call.next()
    }
    call.detach()
    if (outcome.kind !== 'input') {
      this.#release(call)
      if (outcome.kind === 'error') throw outcome.error
      return this.#wrap(req, outcome.result)
    }
    return {
      resultType: 'input_required',
      inputRequests: call.pending(),
      requestState: await this.codec.mint(
        {
          backend: req.backend,
          method: req.method,
          target: req.target,
          hold: call.id,
          round: call.round,
        },
        req.callerKey,
      ),
    } as Result
  }

  /** A backend's own `input_required` goes out under vmcp's state, carrying the backend's. */
  async #wrap(req: InteractionRequest, result: Result): Promise<Result> {
    if (!isInputRequired(result)) return result
    const out: Record<string, unknown> = {
      resultType: 'input_required',
      requestState: await this.codec.mint(
        {
          backend: req.backend,
          method: req.method,
          target: req.target,
          ...(result.requestState !== undefined ? { state: result.requestState } : {}),
        },
        req.callerKey,
      ),
    }
    if (result.inputRequests) out.inputRequests = result.inputRequests
    if (result._meta) out._meta = result._meta
    return out as Result
  }

  /** Keeps the call for the caller's retry; false when the bounds are reached. */
  #hold(call: HeldCall): boolean {
    if (this.#holds.get(call.id) === call) return true
    const { maxHolds, maxHoldsPerCaller, holdTimeout, logger } = this.#options
    let mine = 0
    for (const h of this.#holds.values()) if (h.callerKey === call.callerKey) mine++
    if (this.#holds.size >= maxHolds || mine >= maxHoldsPerCaller) {
      logger.warn(
        { held: this.#holds.size, mine },
        'too many calls waiting for input; refusing to hold another',
      )
      return false
    }
    this.#holds.set(call.id, call)
    call.timer = setTimeout(() => {
      this.#holds.delete(call.id)
      call.cancel(`no answer from the client within ${Math.round(holdTimeout / 1000)} s`)
    }, holdTimeout)
    call.timer.unref()
    return true
  }

  #release(call: HeldCall): void {
    clearTimeout(call.timer)
    if (this.#holds.get(call.id) === call) this.#holds.delete(call.id)
  }
}
