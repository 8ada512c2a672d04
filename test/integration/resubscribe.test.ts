import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import type { Client } from '@modelcontextprotocol/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  FIXTURES,
  startHttpBackend,
  startTestBackend,
  TEST_BACKEND,
  type RunningBackend,
} from '../support/backends.js'
import { freePort } from '../support/http.js'
import { callTextV2, connectV2, MODERN_BACKEND } from '../support/modern.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

interface Status {
  backends: Array<{ name: string; health: string }>
}

const health = async (gw: RunningVmcp, name: string) => {
  const s = (await (await fetch(`${gw.base}/status`)).json()) as Status
  return s.backends.find((b) => b.name === name)?.health
}

/** A 2025 session and a 2026-07-28 listener, each collecting the resources/updated it hears. */
async function watchers(gw: RunningVmcp, uris: string[]) {
  const session = await connectClient(gw.url)
  const sessionHeard: string[] = []
  session.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
    sessionHeard.push(n.params.uri)
  })
  for (const uri of uris) await session.subscribeResource({ uri })
  const listener = await connectV2(gw.url, 'auto')
  const listenerHeard: string[] = []
  listener.setNotificationHandler('notifications/resources/updated', async (n) => {
    listenerHeard.push(n.params.uri)
  })
  const sub = await listener.listen({ resourceSubscriptions: uris })
  expect([...(sub.honoredFilter.resourceSubscriptions ?? [])].sort()).toEqual([...uris].sort())
  return {
    session,
    listener,
    sessionHeard,
    listenerHeard,
    /** Changes the resource (through `poke`) until both have heard of it once more. */
    async hearAfter(poke: () => Promise<unknown>, uri: string) {
      const before = [sessionHeard, listenerHeard].map((h) => h.filter((u) => u === uri).length)
      await vi.waitFor(async () => {
        await poke()
        expect(sessionHeard.filter((u) => u === uri).length).toBeGreaterThan(before[0] as number)
        expect(listenerHeard.filter((u) => u === uri).length).toBeGreaterThan(before[1] as number)
      }, EVENTUALLY)
    },
    async close() {
      await sub.close()
      await Promise.allSettled([session.close(), listener.close()])
    },
  }
}

// A restarted backend has forgotten every subscription vmcp made there: vmcp makes them again
// (MCP 2025-11-25 §Resources, Subscriptions; 2026-07-28: the URIs of its listen stream).
describe('resource subscriptions survive a backend restart', () => {
  let betaPort: number
  let novaPort: number
  let beta: RunningBackend | undefined
  let nova: RunningBackend | undefined
  let gw: RunningVmcp
  let w: Awaited<ReturnType<typeof watchers>>
  let poker: V1Client

  /** Stops a backend, waits until vmcp saw it gone, starts it again on the same port. */
  const restart = async (name: string, stop: () => Promise<void>, start: () => Promise<void>) => {
    await stop()
    await vi.waitFor(async () => expect(await health(gw, name)).toBe('unhealthy'), EVENTUALLY)
    await start()
    await vi.waitFor(async () => expect(await health(gw, name)).toBe('healthy'), EVENTUALLY)
  }

  beforeAll(async () => {
    betaPort = await freePort()
    novaPort = await freePort()
    beta = await startTestBackend(['--name', 'beta'], betaPort)
    nova = await startHttpBackend(MODERN_BACKEND, ['--name', 'nova', '--subscribable'], novaPort)
    gw = await startVmcp({
      backends: [
        { name: 'beta', transport: 'streamable-http', url: beta.url },
        { name: 'nova', transport: 'streamable-http', url: nova.url },
      ],
      operational: { healthCheckInterval: '1s', healthCheckTimeout: '900ms', discoveryTimeout: '15s' },
    })
    w = await watchers(gw, ['test://counter', 'nova://motd'])
    poker = await connectClient(gw.url)
  })
  afterAll(async () => {
    await Promise.allSettled([w?.close(), poker?.close()])
    await gw?.close()
    await Promise.allSettled([beta?.close(), nova?.close()])
  })

  it('from a 2025 HTTP backend, to 2025 sessions and 2026-07-28 listeners', async () => {
    const bump = () => callText(poker, 'beta_bump')
    await w.hearAfter(bump, 'test://counter')
    await restart(
      'beta',
      async () => beta?.kill(),
      async () => {
        beta = await startTestBackend(['--name', 'beta'], betaPort)
      },
    )
    await w.hearAfter(bump, 'test://counter')
  })

  it('from a 2026-07-28 HTTP backend, to 2025 sessions and 2026-07-28 listeners', async () => {
    const touch = () => callTextV2(w.listener, 'nova_touch')
    await w.hearAfter(touch, 'nova://motd')
    await restart(
      'nova',
      async () => nova?.kill(),
      async () => {
        nova = await startHttpBackend(MODERN_BACKEND, ['--name', 'nova', '--subscribable'], novaPort)
      },
    )
    await w.hearAfter(touch, 'nova://motd')
  })
})

describe('resource subscriptions survive a stdio backend restart', () => {
  it('subscribes the new process of a 2026-07-28 stdio backend to what sessions and listeners watched', async () => {
    const gw = await startVmcp({
      backends: [
        {
          name: 'orbit',
          transport: 'stdio',
          command: process.execPath,
          args: [`${FIXTURES}modern-stdio.mjs`, '--name', 'orbit'],
        },
      ],
    })
    const w = await watchers(gw, ['orbit://motd'])
    try {
      const touch = () => callTextV2(w.listener, 'orbit_touch')
      await w.hearAfter(touch, 'orbit://motd')
      await w.listener.callTool({ name: 'orbit_crash', arguments: {} })
      // It answers before it exits: wait for the restart, not only for health.
      await vi.waitFor(async () => {
        const s = (await (await fetch(`${gw.base}/status`)).json()) as {
          backends: Array<{ health: string; restarts: number }>
        }
        expect(s.backends[0]).toMatchObject({ health: 'healthy', restarts: 1 })
      }, EVENTUALLY)
      await w.hearAfter(touch, 'orbit://motd')
    } finally {
      await w.close()
      await gw.close()
    }
  })

  it('subscribes the new process to what sessions and listeners watched', async () => {
    const gw = await startVmcp({
      backends: [
        {
          name: 'alpha',
          transport: 'stdio',
          command: process.execPath,
          args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'],
        },
      ],
    })
    const w = await watchers(gw, ['test://counter', 'nova://motd'])
    const poker = await connectClient(gw.url)
    try {
      const bump = () => callText(poker, 'alpha_bump')
      await w.hearAfter(bump, 'test://counter')
      const crashed = await poker.callTool({ name: 'alpha_crash', arguments: {} })
      expect(crashed.isError).toBe(true)
      await vi.waitFor(async () => expect(await health(gw, 'alpha')).toBe('healthy'), EVENTUALLY)
      await w.hearAfter(bump, 'test://counter')
    } finally {
      await Promise.allSettled([w.close(), poker.close()])
      await gw.close()
    }
  })
})
