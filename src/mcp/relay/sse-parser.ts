/**
 * A small `text/event-stream` parser over Node Buffers (WHATWG HTML §9.2.6 "Interpreting an
 * event stream"): `data:` lines joined with newlines, dispatched on a blank line; `event:` names
 * the event; comments and `id:`/`retry:` are ignored (vmcp does not resume relayed calls).
 * No web streams, no TextDecoder: one Buffer scan per chunk, and only the values of `data` and
 * `event` fields are decoded (the field name is compared as bytes).
 */
export class SseParser {
  #rest: Buffer | undefined
  // The event's data: its first line, then any further lines (most events have one).
  #data: string | undefined
  #more: string[] | undefined
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
      this.#line(buf, start, end)
      start = nl + 1
    }
    this.#rest = start < buf.length ? buf.subarray(start) : undefined
    if (this.#rest && this.#rest.length > this.#maxLine) throw new Error('event stream line too long')
  }

  #line(buf: Buffer, start: number, end: number): void {
    if (start === end) return this.#dispatch()
    // A line that starts with a colon is a comment.
    if (buf[start] === COLON) return
    // The colon is looked for within this line only: Buffer.indexOf would run on to the next
    // colon, however far, for every line without one (quadratic on a stream of such lines).
    let nameEnd = start
    while (nameEnd < end && buf[nameEnd] !== COLON) nameEnd++
    if (isField(buf, start, nameEnd, DATA)) {
      const line = valueOf(buf, nameEnd, end)
      if (this.#data === undefined) this.#data = line
      else (this.#more ??= []).push(line)
    } else if (isField(buf, start, nameEnd, EVENT)) this.#event = valueOf(buf, nameEnd, end)
  }

  #dispatch(): void {
    const first = this.#data
    const event = this.#event || 'message'
    this.#event = ''
    if (first === undefined) return
    const data = this.#more ? [first, ...this.#more].join('\n') : first
    this.#data = undefined
    this.#more = undefined
    this.#onEvent(data, event)
  }
}

const COLON = 58
const SPACE = 32
const DATA = Buffer.from('data')
const EVENT = Buffer.from('event')

/** A field's value: after the colon and one space, if any; empty without a colon. */
function valueOf(buf: Buffer, nameEnd: number, end: number): string {
  if (nameEnd === end) return ''
  let value = nameEnd + 1
  if (value < end && buf[value] === SPACE) value++
  return buf.toString('utf8', value, end)
}

function isField(buf: Buffer, start: number, end: number, name: Buffer): boolean {
  if (end - start !== name.length) return false
  for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) return false
  return true
}
