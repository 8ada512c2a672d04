import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { readIncomingLimited, type BodyRead } from '../../../src/server/body.js'

// A real node:http server: `when` says at which point of the request the body is read. In the
// 'request' event the parser has not reached the body yet (the streamed read); a macrotask later
// a small body has all arrived (the read without listeners).
let server: Server | undefined
afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())))

async function readOn(
  body: Array<string | Buffer>,
  when: 'at-headers' | 'microtask' | 'later',
  maxBytes = 64,
  headers: Record<string, string> = {},
): Promise<{ read: BodyRead; sync: boolean }> {
  let seen: Promise<{ read: BodyRead; sync: boolean }> | undefined
  server = createServer((req: IncomingMessage, res) => {
    const read = () => {
      const r = readIncomingLimited(req, maxBytes)
      return r instanceof Promise ? r.then((read) => ({ read, sync: false })) : Promise.resolve({ read: r, sync: true })
    }
    seen =
      when === 'at-headers'
        ? read()
        : when === 'microtask'
          ? Promise.resolve().then(read)
          : new Promise((ok) => setImmediate(() => ok(read())))
    void seen.then(() => res.end('ok'))
  })
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => {
      res.resume()
      res.on('end', ok)
    })
    req.on('error', fail)
    for (const part of body) req.write(part)
    req.end()
  })
  return seen!
}

describe('readIncomingLimited', () => {
  it('reads a body that has all arrived at once, without waiting', async () => {
    const got = await readOn(['{"a":1}'], 'later', 64, { 'content-length': '7' })
    expect(got).toEqual({ read: { ok: true, text: '{"a":1}' }, sync: true })
  })

  it('finds the body not yet parsed a microtask after the request event: only the check phase has it', async () => {
    // Why the /mcp POST listener serves from setImmediate (src/server/mcp-post.ts).
    const got = await readOn(['{"a":1}'], 'microtask', 64, { 'content-length': '7' })
    expect(got).toEqual({ read: { ok: true, text: '{"a":1}' }, sync: false })
  })

  it('streams a body that is still arriving', async () => {
    const got = await readOn(['{"a":', '1}'], 'at-headers')
    expect(got).toEqual({ read: { ok: true, text: '{"a":1}' }, sync: false })
  })

  it('refuses a body past the limit, arrived or streamed, declared or not', async () => {
    const big = 'x'.repeat(65)
    expect((await readOn([big], 'later')).read).toEqual({ ok: false })
    expect((await readOn([big], 'at-headers')).read).toEqual({ ok: false })
    expect((await readOn([big.slice(0, 40), big.slice(40)], 'at-headers')).read).toEqual({ ok: false })
    const declared = await readOn([big], 'at-headers', 64, { 'content-length': '65' })
    expect(declared).toEqual({ read: { ok: false }, sync: true })
  })

  it('reads an empty body as empty text, on either path', async () => {
    expect((await readOn([], 'later', 64, { 'content-length': '0' })).read).toEqual({ ok: true, text: '' })
    expect((await readOn([], 'at-headers')).read).toEqual({ ok: true, text: '' })
  })

  it('keeps multi-byte characters split across chunks whole', async () => {
    const bytes = Buffer.from('{"t":"é€😀"}')
    // The split falls inside "é" (two bytes).
    const got = await readOn([bytes.subarray(0, 7), bytes.subarray(7)], 'at-headers')
    expect(got.read).toEqual({ ok: true, text: '{"t":"é€😀"}' })
  })
})
