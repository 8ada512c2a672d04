import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js'
import { clientError } from './request-errors.js'
import type { CallEntry, CallTable, ReplyChannel } from './routing/call-table.js'
import { isRequest, isResponse, REQUEST_CANCELLED, type RpcMessage, type RpcRequest } from './routing/json-rpc.js'

interface BridgedCall {
  entry: CallEntry
  /** The client's request, for the text of an error answer. */
  request: RpcRequest
  /** The POST reply this call answers on; absent for calls that came through the SDK transport. */
  channel: ReplyChannel | undefined
}

/**
 * Sits between the client and the SDK `Server`, which sees only vmcp's internal request ids.
 * Requests reach it two ways: from vmcp's own POST handling (each with its own reply channel),
 * and from the SDK's Streamable HTTP server transport (initialize, batches; answers go back
 * through it under the client's id). Either way the call is in the session's {@link CallTable},
 * so a reused client id can never route one call's answer to another, and a cancellation
 * reaches the call it was meant for.
 */
export class SdkServerBridge implements Transport {
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void
  readonly #inner: Transport
  readonly #table: CallTable
  readonly #calls = new Map<number, BridgedCall>()

  constructor(inner: Transport, table: CallTable) {
    this.#inner = inner
    this.#table = table
    inner.onmessage = (message, extra) => this.#fromTransport(message, extra)
    inner.onclose = () => this.onclose?.()
    inner.onerror = (error) => this.onerror?.(error)
  }

  get sessionId(): string | undefined {
    return this.#inner.sessionId
  }

  setProtocolVersion(version: string): void {
    this.#inner.setProtocolVersion?.(version)
  }

  start(): Promise<void> {
    return this.#inner.start()
  }

  close(): Promise<void> {
    return this.#inner.close()
  }

  /** A client request for the SDK `Server`, answered on `channel`. */
  request(message: RpcRequest, channel: ReplyChannel, extra?: MessageExtraInfo): void {
    const entry = this.#begin(message, channel, extra)
    if (channel.closed) return this.#table.abandon(entry)
    channel.onClose(() => this.#table.abandon(entry))
  }

  /** A client notification or response (to a request the `Server` sent). */
  deliver(message: RpcMessage, extra?: MessageExtraInfo): void {
    this.#fromClient(message as JSONRPCMessage, extra)
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (isResponse(message)) {
      const call = this.#calls.get(message.id as number)
      // A call that was cancelled or abandoned has no one waiting for its answer.
      if (!call) return
      this.#calls.delete(call.entry.internalId)
      this.#table.end(call.entry)
      const answer = { ...message, id: call.entry.clientId }
      if ('error' in answer && answer.error) answer.error = clientError(call.request, answer.error)
      if (call.channel) return call.channel.finish(answer as RpcMessage)
      return this.#inner.send(answer as JSONRPCMessage)
    }
    const related = options?.relatedRequestId
    if (related === undefined) return this.#inner.send(message, options)
    const call = this.#calls.get(related as number)
    if (!call) {
      if (isRequest(message)) throw new Error('the client request this belongs to has ended')
      return
    }
    if (call.channel) return call.channel.event(message as RpcMessage)
    return this.#inner.send(message, { ...options, relatedRequestId: call.entry.clientId })
  }

  #begin(message: RpcRequest, channel: ReplyChannel | undefined, extra?: MessageExtraInfo): CallEntry {
    const entry = this.#table.begin(message.id, (e, reason, answer) => {
      const call = this.#calls.get(e.internalId)
      this.#calls.delete(e.internalId)
      this.onmessage?.({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: e.internalId, reason },
      })
      if (!answer) return
      const error = {
        jsonrpc: '2.0' as const,
        id: e.clientId,
        error: { code: REQUEST_CANCELLED, message: 'Request cancelled' },
      }
      if (call?.channel) call.channel.finish(error)
      else void this.#inner.send(error).catch(() => undefined)
    })
    this.#calls.set(entry.internalId, { entry, channel, request: message })
    this.onmessage?.({ ...message, id: entry.internalId } as JSONRPCMessage, extra)
    return entry
  }

  #fromTransport(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (isRequest(message)) {
      this.#begin(message, undefined, extra)
      return
    }
    this.#fromClient(message, extra)
  }

  #fromClient(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if ('method' in message && message.method === 'notifications/cancelled') {
      const params = message.params as { requestId?: unknown; reason?: unknown } | undefined
      const id = params?.requestId
      if (typeof id === 'string' || typeof id === 'number') {
        this.#table.cancelFromClient(id, typeof params?.reason === 'string' ? params.reason : 'cancelled by client')
      }
      return
    }
    this.onmessage?.(message, extra)
  }
}
