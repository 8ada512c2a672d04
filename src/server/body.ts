export type BodyRead = { ok: true; text: string } | { ok: false }

/**
 * Reads a request body as UTF-8, refusing it as soon as it passes `maxBytes`, whether the
 * client declared a Content-Length or streams it chunked.
 */
export async function readBodyLimited(req: Request, maxBytes: number): Promise<BodyRead> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return { ok: false }
  if (!req.body) return { ok: true, text: '' }
  const reader = req.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined)
      return { ok: false }
    }
    chunks.push(value)
  }
  return { ok: true, text: Buffer.concat(chunks).toString('utf8') }
}
