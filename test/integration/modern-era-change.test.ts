import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import type { Client } from '@modelcontextprotocol/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { stringify } from 'yaml'
import type { OutgoingAuthStrategy } from '../../src/auth/outgoing/index.js'
import { parseConfigText, type BackendConfig } from '../../src/config/index.js'
import { BackendRuntime } from '../../src/mcp/backend-runtime.js'
import { createOutboundFetch } from '../../src/net/index.js'
import { startHttpBackend, startTestBackend, type RunningBackend } from '../support/backends.js'
import { freePort } from '../support/http.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callTextV2, connectV2, MODERN_BACKEND } from '../support/modern.js'
import { callText, connectClient, memoryLogger, startVmcp, type RunningVmcp } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

interface Status {
  backends: Array<{ name: string; health: string }>
}

// The era verdict of a backend is probed once, but a backend can be replaced by one of the other
// era on the same URL (an upgrade, a rollback): vmcp probes again when it reconnects.
describe('a backend that changes protocol era on the same URL', () => {
  let port: number
  let shift: RunningBackend | undefined
  let gw: RunningVmcp
  let legacy: V1Client
  let modern: Client

  const health = async () => {
    const s = (await (await fetch(`${gw.base}/status`)).json()) as Status
    return s.backends.find((b) => b.name === 'shift')?.health
  }
  const toolNames = async () => (await modern.listTools()).tools.map((t) => t.name)
  /** Replaces the backend: stopped (vmcp sees it gone), then the other era on the same port. */
  const replace = async (start: () => Promise<RunningBackend>) => {
    await shift?.kill()
    await vi.waitFor(async () => expect(await health()).toBe('unhealthy'), EVENTUALLY)
    shift = await start()
    await vi.waitFor(async () => expect(await health()).toBe('healthy'), EVENTUALLY)
  }
  const legacyBackend = () => startTestBackend(['--name', 'shift'], port)
  // --legacy reject: 2026-07-28 only, so a stale 2025 verdict cannot be served at all.
  const modernBackend = () =>
    startHttpBackend(MODERN_BACKEND, ['--name', 'shift', '--legacy', 'reject'], port)

  beforeAll(async () => {
    port = await freePort()
    shift = await legacyBackend()
    gw = await startVmcp({
      backends: [{ name: 'shift', transport: 'streamable-http', url: `http://127.0.0.1:${port}/mcp` }],
      operational: { healthCheckInterval: '1s', healthCheckTimeout: '900ms', discoveryTimeout: '15s' },
    })
    legacy = await connectClient(gw.url)
    modern = await connectV2(gw.url, 'auto', { capabilities: { elicitation: { form: {} } } })
    modern.setRequestHandler('elicitation/create', async (req) => {
      const schema = (req.params as { requestedSchema?: { properties?: object } }).requestedSchema
      const content: Record<string, string | boolean> =
        schema?.properties && 'ok' in schema.properties ? { ok: true } : { answer: 'yes' }
      return { action: 'accept', content }
    })
  })
  afterAll(async () => {
    await Promise.allSettled([legacy?.close(), modern?.close()])
    await gw?.close()
    await shift?.close()
  })

  it('serves a 2025 backend upgraded to 2026-07-28 in its new era after it restarts', async () => {
    expect(await callTextV2(modern, 'shift_echo', { text: 'old' })).toBe('shift: old')
    expect(await toolNames()).not.toContain('shift_era')
    await replace(modernBackend)
    await vi.waitFor(async () => expect(await toolNames()).toContain('shift_era'), EVENTUALLY)
    // Input during a call is the 2026-07-28 input_required round trip, which only the new era has.
    expect(await callTextV2(modern, 'shift_confirm', { action: 'deploy' })).toBe(
      'shift: deploy confirmed',
    )
    expect(await callTextV2(modern, 'shift_era')).toBe('modern')
    // The 2025 session reaches the 2026-07-28-only backend through vmcp's v2 link.
    expect(await callText(legacy, 'shift_echo', { text: 'up' })).toBe('shift: up')
    expect(gw.logs.some((l) => l.includes('backend protocol era changed'))).toBe(true)
  })

  it('serves a 2026-07-28 backend rolled back to 2025 in its old era after it restarts', async () => {
    await replace(legacyBackend)
    await vi.waitFor(async () => expect(await toolNames()).not.toContain('shift_era'), EVENTUALLY)
    expect(await callTextV2(modern, 'shift_echo', { text: 'down' })).toBe('shift: down')
    expect(await callText(legacy, 'shift_echo', { text: 'down' })).toBe('shift: down')
    expect(await callTextV2(modern, 'shift_ask_user', { question: 'still?' })).toBe('answer: yes')
  })
})

// No health check runs between the restart and the next call: the call's failure shows it.
describe('a backend that changes era between two calls', () => {
  it.each([
    ['2025 to 2026-07-28', 'legacy', 'modern'],
    ['2026-07-28 to 2025', 'modern', 'legacy'],
  ] as const)('is probed again when a call fails after it went from %s', async (_, from, to) => {
    const port = await freePort()
    const start = (era: 'legacy' | 'modern') =>
      era === 'legacy'
        ? startTestBackend(['--name', 'flip'], port)
        : startHttpBackend(MODERN_BACKEND, ['--name', 'flip', '--legacy', 'reject'], port)
    let flip = await start(from)
    const gw = await startVmcp({
      backends: [{ name: 'flip', transport: 'streamable-http', url: `http://127.0.0.1:${port}/mcp` }],
      operational: { healthCheckInterval: '1h', discoveryTimeout: '15s' },
    })
    const legacy = await connectClient(gw.url)
    const modern = await connectV2(gw.url, 'auto')
    try {
      expect(await callText(legacy, 'flip_echo', { text: 'a' })).toBe('flip: a')
      expect(await callTextV2(modern, 'flip_echo', { text: 'a' })).toBe('flip: a')
      await flip.kill()
      flip = await start(to)
      // The first calls may fail (they went to the old era); later ones are served in the new.
      await vi.waitFor(async () => {
        expect(await callText(legacy, 'flip_echo', { text: 'b' })).toBe('flip: b')
        expect(await callTextV2(modern, 'flip_echo', { text: 'b' })).toBe('flip: b')
      }, EVENTUALLY)
      const names = (await modern.listTools()).tools.map((t) => t.name)
      expect(names.includes('flip_era')).toBe(to === 'modern')
    } finally {
      await Promise.allSettled([legacy.close(), modern.close()])
      await gw.close()
      await flip.close()
    }
  })
})

// A per-user backend (credentials per caller) has no shared connection to notice a restart: a
// connection that cannot open with the verdict, or a failed call, makes the next one probe.
describe('a per-user backend that changes era', () => {
  it('is probed again by the next connection after a refused handshake or a failed call', async () => {
    const port = await freePort()
    const start = (era: 'legacy' | 'modern') =>
      era === 'legacy'
        ? startTestBackend(['--name', 'own'], port)
        : startHttpBackend(MODERN_BACKEND, ['--name', 'own', '--legacy', 'reject'], port)
    let own = await start('legacy')
    const config = parseConfigText(
      stringify({
        backends: [{ name: 'own', transport: 'streamable-http', url: `http://127.0.0.1:${port}/mcp` }],
      }),
      { baseDir: process.cwd(), env: {} },
    )
    const runtime = new BackendRuntime({
      config: config.backends[0] as BackendConfig,
      auth: { identityScoped: true, headers: async () => ({}) } as unknown as OutgoingAuthStrategy,
      fetch: createOutboundFetch(),
      logger: memoryLogger().logger,
      operational: config.operational,
      clientInfo: { name: 'vmcp-test', version: '1' },
      sink: { listChanged: () => undefined, resourceUpdated: () => undefined },
      onChange: () => undefined,
    })
    const sink = { listChanged: () => undefined, resourceUpdated: () => undefined, closed: () => undefined }
    const open = () => runtime.openConnection(() => undefined, {}, sink)
    try {
      await runtime.start()
      expect(runtime.health).toBe('per-user')
      let conn = await open()
      expect([conn.era, runtime.eraVerdict?.era]).toEqual(['legacy', 'legacy'])
      await conn.close()

      // Now 2026-07-28 only: the 2025 handshake is refused, so the connection probes.
      await own.kill()
      own = await start('modern')
      conn = await open()
      expect([conn.era, runtime.eraVerdict?.era]).toEqual(['modern', 'modern'])
      await conn.close()

      // Back to 2025: the remembered discover result opens a link with no round trip, whose
      // call fails; after that failure is reported, the next connection probes.
      await own.kill()
      own = await start('legacy')
      const stale = await open()
      const failure = await stale.client.listTools().then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(failure).toBeInstanceOf(Error)
      // The caller replaces the connection the failed call used.
      expect(runtime.reportFailure(failure)).toBe(true)
      await stale.close()
      conn = await open()
      expect([conn.era, runtime.eraVerdict?.era]).toEqual(['legacy', 'legacy'])
      expect((await conn.client.listTools()).tools.map((t) => t.name)).toContain('echo')
      await conn.close()
    } finally {
      await runtime.stop()
      await own.close()
    }
  })
})

describe('a per-user (Mode B upstream_inject) backend that changes era under a 2025 session', () => {
  let stack: ModeBStack | undefined
  afterAll(async () => {
    await stack?.close()
  })

  it('replaces the relayed session that failed, so the next call reaches the backend in its new era', async () => {
    stack = await startModeBStack()
    const { client } = await connectWithOAuth(stack.gw.url)
    try {
      expect(await callText(client, 'corpapi_echo', { text: 'a' })).toBe('corp-api: a')
      const port = stack.backends.corp.port
      await stack.backends.corp.kill()
      stack.backends.corp = await startHttpBackend(
        MODERN_BACKEND,
        ['--name', 'corp-api', '--legacy', 'reject'],
        port,
      )
      // The first calls may fail (they went to the old session); later ones reach the new era.
      await vi.waitFor(
        async () => expect(await callText(client, 'corpapi_echo', { text: 'b' })).toBe('corp-api: b'),
        EVENTUALLY,
      )
      // The session's catalog of this backend is its own, so the verdict shows in the log.
      const changed = stack.gw.logs.filter((l) => l.includes('backend protocol era changed'))
      expect(changed.some((l) => l.includes('"backend":"corpapi"') && l.includes('"now":"modern"'))).toBe(true)
    } finally {
      await client.close()
    }
  })
})
