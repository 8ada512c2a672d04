import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOutboundFetch, SsrfBlockedError } from '../../../src/net/index.js'

describe('createOutboundFetch: the SSRF guard applies to client-supplied URLs only', () => {
  let server: Server
  let port: number

  beforeAll(async () => {
    server = createServer((_req, res) => res.end('ok'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('guarded: refuses loopback literals, mapped literals and names that resolve to loopback', async () => {
    const guarded = createOutboundFetch({ ssrfGuard: true })
    for (const host of ['127.0.0.1', '[::ffff:127.0.0.1]', '[::1]', 'localhost']) {
      await expect(guarded(`http://${host}:${port}/`)).rejects.toSatisfy((err: unknown) => {
        // Literals fail before any connection; names fail in the guarded DNS lookup (wrapped by undici).
        const cause = (err as { cause?: unknown }).cause
        return err instanceof SsrfBlockedError || cause instanceof SsrfBlockedError
      })
    }
  })

  it('unguarded (operator-configured URLs): loopback is reachable', async () => {
    const res = await createOutboundFetch()(`http://127.0.0.1:${port}/`)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('ok')
  })
})
