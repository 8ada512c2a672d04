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
