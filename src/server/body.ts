import type { IncomingMessage } from 'node:http'
import { readStreamLimited } from '../net/index.js'

export type BodyRead = { ok: true; text: string } | { ok: false }

/**
 * Reads a request body as UTF-8, refusing it as soon as it passes `maxBytes`, whether the
 * client declared a Content-Length or streams it chunked.
 */
export async function readBodyLimited(req: Request, maxBytes: number): Promise<BodyRead> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return { ok: false }
  const buf = await readStreamLimited(req.body, maxBytes)
  return buf ? { ok: true, text: buf.toString('utf8') } : { ok: false }
}

/**
 * {@link readBodyLimited} on the Node request itself: no web stream in between. A request whose
 * body has all arrived (the usual small POST, read in the event loop's check phase after its
 * headers) is read at once: no listeners, no promise, no flowing mode.
 */
export function readIncomingLimited(incoming: IncomingMessage, maxBytes: number): BodyRead | Promise<BodyRead> {
  const declared = Number(incoming.headers['content-length'] ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return { ok: false }
  if (incoming.complete && incoming.readableFlowing === null && !incoming.readableEnded) {
    // Everything the parser took is buffered in the stream: read() hands it over as one Buffer.
    if (incoming.readableLength > maxBytes) return { ok: false }
    const buf = incoming.readableLength === 0 ? undefined : (incoming.read() as Buffer | null)
    if (buf === null) return readFlowing(incoming, maxBytes)
    return { ok: true, text: buf ? buf.toString('utf8') : '' }
  }
  return readFlowing(incoming, maxBytes)
}

function readFlowing(incoming: IncomingMessage, maxBytes: number): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    // Listeners stay (removing them costs more than the request): past the limit, or after an
    // error, the rest is read and dropped until the answer closes the connection.
    let over = false
    incoming.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > maxBytes) {
        over = true
        chunks.length = 0
        resolve({ ok: false })
        return
      }
      chunks.push(chunk)
    })
    incoming.on('end', () => {
      if (over) return
      const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)
      resolve({ ok: true, text: buf.toString('utf8') })
    })
    incoming.on('error', (err: Error) => {
      over = true
      reject(err)
    })
  })
}
