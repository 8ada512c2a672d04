import type { ServerContext } from '@modelcontextprotocol/server'
import type { Result } from '@modelcontextprotocol/sdk/types.js'
import type { HttpRelay, RelayCallOptions } from '../relay/http-relay.js'
import type { ReplyChannel } from '../routing/call-table.js'
import {
  isNotification,
  isRequest,
  type RpcMessage,
  type RpcRequest,
  type RpcResponse,
} from '../routing/json-rpc.js'
import type { BackendRetry, CallIo, Interactions } from './input-required.js'

/** A backend's JSON-RPC error, kept as the backend worded it. */
class BackendRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

export interface HeldRelayCall {
  relay: HttpRelay
  interactions: Interactions
  callerKey: string
  backend: string
  /** The exposed tool or prompt name, or the resource URI (what a retry must repeat). */
  target: string
  /** The caller's request, as it came. */
  message: RpcRequest
  /** The relay call for a fresh start, or for a backend retry carrying `retry`. */
  options(retry?: BackendRetry): RelayCallOptions
  /** This request's reply (the answer, or `input_required`, ends it). */
  reply: ReplyChannel
  /** Marks the backend call in flight (it may outlive this request); returns its release. */
  busy(): () => void
}

/**
 * A relayed call that may stop for the caller's input (MCP 2026-07-28 §Multi Round-Trip
 * Requests): the backend's elicitation, sampling or roots request arrives on the raw relay as it
 * does for 2025 sessions, and input-required.ts holds the call open between the caller's
 * requests, answering each with `input_required` until the call ends. The backend call itself is
 * the relay's, so 2025 sessions and 2026-07-28 callers share one call path to HTTP backends.
 */
export function relayHeld(call: HeldRelayCall): void {
  const { message, reply } = call
  const closed = new AbortController()
  reply.onClose(() => closed.abort())
  call.interactions
    .run({
      callerKey: call.callerKey,
      backend: call.backend,
      method: message.method,
      target: call.target,
      ctx: legOf(message, reply, closed.signal),
      start: (io, retry) => {
        const release = call.busy()
        return relayed(call.relay, message, call.options(retry), io).finally(release)
      },
    })
    .then(
      (result) => reply.finish({ jsonrpc: '2.0', id: message.id, result }),
      (err: unknown) => reply.finish({ jsonrpc: '2.0', id: message.id, error: rpcError(err) }),
    )
}

/**
 * The request leg as input-required.ts reads it (the part of the SDK's `ServerContext` it uses):
 * its signal, the caller's envelope and progress token, its retry material, and progress going
 * out on this request's reply.
 */
function legOf(message: RpcRequest, reply: ReplyChannel, signal: AbortSignal): ServerContext {
  const params = message.params ?? {}
  const meta = (params._meta as Record<string, unknown> | undefined) ?? {}
  const mcpReq = {
    signal,
    envelope: meta,
    _meta: meta,
    requestState: () => params.requestState,
    inputResponses: params.inputResponses,
    notify: async (n: { method: string; params?: Record<string, unknown> }) =>
      reply.event({ jsonrpc: '2.0', ...n }),
  }
  return { mcpReq } as unknown as ServerContext
}

/** One backend call through the relay, its server-to-client traffic handed to `io`. */
function relayed(
  relay: HttpRelay,
  message: RpcRequest,
  options: RelayCallOptions,
  io: CallIo,
): Promise<Result> {
  return new Promise<Result>((resolve, reject) => {
    const signal = io.signal
    // The hold ended (expired, cancelled, the caller went away): the relay stops the backend
    // call and tells the backend (notifications/cancelled); the hold hears it here.
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
    const channel: ReplyChannel = {
      get closed() {
        return signal.aborted
      },
      onClose: (listener) => {
        if (signal.aborted) listener()
        else signal.addEventListener('abort', listener, { once: true })
      },
      event: (m: RpcMessage) => {
        if (isRequest(m)) {
          io.ask(m as never, signal).then(
            (result) => relay.deliverResponse({ jsonrpc: '2.0', id: m.id, result }),
            (err: unknown) =>
              relay.deliverResponse({ jsonrpc: '2.0', id: m.id, error: rpcError(err) }),
          )
          return
        }
        if (!isNotification(m) || m.method !== 'notifications/progress') return
        // Progress goes to the request the caller is waiting on now, under its token.
        const leg = io.leg()
        const token = leg.mcpReq._meta?.progressToken
        if (token === undefined) return
        void leg.mcpReq
          .notify({ method: m.method, params: { ...m.params, progressToken: token } } as never)
          .catch(() => undefined)
      },
      finish: (m: RpcMessage) => {
        const answer = m as RpcResponse
        if (answer.error)
          reject(new BackendRpcError(answer.error.code, answer.error.message, answer.error.data))
        else resolve((answer.result ?? {}) as Result)
      },
    }
    relay.call(message, options, channel)
  })
}

/** An error as a JSON-RPC error object: its own code when it has one, else internal error. */
function rpcError(err: unknown): { code: number; message: string; data?: unknown } {
  const e = err as { code?: unknown; message?: unknown; data?: unknown } | null
  const code = typeof e?.code === 'number' ? e.code : -32603
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return e?.data === undefined ? { code, message } : { code, message, data: e.data }
}
