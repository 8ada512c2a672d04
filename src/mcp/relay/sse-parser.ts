/**
 * A small `text/event-stream` parser over Node Buffers (WHATWG HTML §9.2.6 "Interpreting an
 * event stream"): `data:` lines joined with newlines, dispatched on a blank line; `event:` names
 * the event; comments and `id:`/`retry:` are ignored (vmcp does not resume relayed calls).
 * No web streams, no TextDecoder: one Buffer scan per chunk.
 */
export class SseParser {
  #rest: Buffer | undefined
  #data: string[] = []
  #event = ''
  readonly #onEvent: (data: string, event: string) => void
  readonly #maxLine: number

  constructor(onEvent: (data: string, event: string) => void, maxLine = 16 * 1024 * 1024) {
    this.#onEvent = onEvent
    this.#maxLine = maxLine
  }

  /** Feeds one chunk; throws when an unterminated line passes the size cap. */
  push(chunk: Buffer): void {
    const buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk
    let start = 0
    for (;;) {
      const nl = buf.indexOf(10, start)
      if (nl < 0) break
      // CRLF and LF both end a line.
      const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl
      this.#line(buf.toString('utf8', start, end))
      start = nl + 1
    }
    this.#rest = start < buf.length ? buf.subarray(start) : undefined
    if (this.#rest && this.#rest.length > this.#maxLine) throw new Error('event stream line too long')
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0) {
        const data = this.#data.join('\n')
        const event = this.#event || 'message'
        this.#data = []
        this.#event = ''
        this.#onEvent(data, event)
      } else this.#event = ''
      return
    }
    if (line.charCodeAt(0) === 58) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#event = value
  }
}
