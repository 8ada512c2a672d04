import type { ServerResponse } from 'node:http'
import { REQUEST_CANCELLED, type DirectReply, type ReplyChannel, type RpcMessage } from '../mcp/index.js'
import type { CallOutcome, CallStat } from '../metrics/index.js'
import type { RpcNote } from './access.js'

const SSE_HEADERS = [
  'content-type',
  'text/event-stream',
  'cache-control',
  'no-cache, no-transform',
  'connection',
  'keep-alive',
  'x-accel-buffering',
  'no',
]

/**
 * `before`, the reply's headers, its CORS headers, then `after`, as the flat name/value list
 * `writeHead` also takes: Node writes it as it is, where an object spread together per reply
 * costs it a slow walk of a dictionary-mode object (about 1.5 µs per reply on the bench machine).
 */
function headerList(
  before: readonly string[],
  headers: Record<string, string>,
  cors: Record<string, string>,
  after: ReadonlyArray<string | number>,
): Array<string | number> {
  const list: Array<string | number> = [...before]
  for (const name in headers) list.push(name, headers[name] as string)
  for (const name in cors) list.push(name, cors[name] as string)
  for (const item of after) list.push(item)
  return list
}

/**
 * One POST's reply written straight to the Node response: a lone answer is one
 * `application/json` write with content-length; anything before it switches to SSE, each
 * message one `event: message` written as it comes (Streamable HTTP §Sending Messages).
 */
export class NodeReplyChannel implements ReplyChannel {
  #sse = false
  #eventThisTick = false
  #done = false
  #closed = false
  #listeners: Array<() => void> = []
  readonly #res: ServerResponse
  readonly #headers: Record<string, string>
  readonly #cors: Record<string, string>
  readonly #started = performance.now()
  stat: CallStat | undefined = undefined

  constructor(res: ServerResponse, headers: Record<string, string>, cors: Record<string, string>) {
    this.#res = res
    this.#headers = headers
    this.#cors = cors
    if (res.destroyed) this.#closed = true
    else {
      // 'close' is emitted once: `on` spares the wrapper `once` builds per call.
      res.on('close', () => {
        if (this.#done) return
        this.#closed = true
        this.#record('cancelled')
        for (const l of this.#listeners.splice(0)) l()
      })
    }
  }

  /** The outcome of the answer this channel carried, for metrics and the access line. */
  outcome: CallOutcome | undefined = undefined

  #record(outcome: CallOutcome): void {
    this.outcome = outcome
    this.stat?.done(outcome, (performance.now() - this.#started) / 1000)
  }

  get closed(): boolean {
    return this.#closed
  }

  onClose(listener: () => void): void {
    if (this.#closed) listener()
    else this.#listeners.push(listener)
  }

  event(message: RpcMessage): void {
    if (this.#done || this.#closed) return
    if (!this.#sse) {
      this.#sse = true
      this.#res.writeHead(200, headerList(SSE_HEADERS, this.#headers, this.#cors, []))
    }
    this.#res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`)
    if (!this.#eventThisTick) {
      this.#eventThisTick = true
      setImmediate(() => (this.#eventThisTick = false))
    }
  }

  finish(message: RpcMessage, status = 200, text?: string): void {
    if (this.#done) return
    this.#done = true
    this.#listeners.length = 0
    if (this.#closed) return
    this.#record(outcomeOf(message))
    if (this.#sse) {
      // One `data:` line: a text with line breaks (a pretty-printed answer) is serialized anew.
      const oneLine = text !== undefined && !text.includes('\n') && !text.includes('\r')
      const last = `event: message\ndata: ${oneLine ? text : JSON.stringify(message)}\n\n`
      // SDK clients handle a notification a microtask after a response read in the same chunk,
      // and drop a progress notification whose request has been answered: let the events
      // written in this tick leave in their own write before the answer.
      if (this.#eventThisTick) setImmediate(() => this.#res.destroyed || this.#res.end(last))
      else this.#res.end(last)
      return
    }
    const body = text ?? JSON.stringify(message)
    this.#res.writeHead(
      status,
      headerList([], this.#headers, this.#cors, ['content-type', 'application/json', 'content-length', Buffer.byteLength(body)]),
    )
    this.#res.end(body)
  }
}

function outcomeOf(message: RpcMessage): CallOutcome {
  if ('error' in message && message.error) return message.error.code === REQUEST_CANCELLED ? 'cancelled' : 'error'
  // A tool that ran and failed is an answer, not a protocol error: counted apart.
  return 'result' in message && message.result?.isError === true ? 'tool_error' : 'ok'
}

/** 202 Accepted with no body: the answer to notifications and responses. */
export function writeAccepted(
  res: ServerResponse,
  headers: Record<string, string>,
  cors: Record<string, string>,
): void {
  res.writeHead(202, headerList([], headers, cors, []))
  res.end()
}

/**
 * The gateway's answers written straight to the Node response, with the request's CORS headers;
 * the channel is noted for the access line when one is written.
 */
export class NodeDirectReply implements DirectReply {
  readonly #res: ServerResponse
  readonly #cors: Record<string, string>
  readonly #note: RpcNote | undefined

  constructor(res: ServerResponse, cors: Record<string, string>, note: RpcNote | undefined) {
    this.#res = res
    this.#cors = cors
    this.#note = note
  }

  channel(headers: Record<string, string>): NodeReplyChannel {
    const channel = new NodeReplyChannel(this.#res, headers, this.#cors)
    if (this.#note) this.#note.channel = channel
    return channel
  }

  accepted(headers: Record<string, string>): void {
    writeAccepted(this.#res, headers, this.#cors)
  }
}
