import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { FIXTURES, TEST_BACKEND } from '../support/backends.js'
import {
  acceptElicitations,
  callTextV2,
  connectV2,
  ERA_MODES,
  expectToolListChangeHeard,
} from '../support/modern.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

const MODERN_STDIO = `${FIXTURES}modern-stdio.mjs`

/** The pids a fixture started with `--pid-file` recorded, one per process start. */
const started = (file: string): number[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number)
    : []
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
/** The eras vmcp logged for a backend: its first verdict, then each change. */
const eraLines = (gw: RunningVmcp, backend: string) =>
  gw.logs
    .filter((l) => /"backend protocol era( changed)?"/.test(l) && l.includes(`"backend":"${backend}"`))
    .map((l) => {
      const line = JSON.parse(l) as { era?: string; now?: string }
      return line.era ?? line.now
    })

const modes = ERA_MODES
/** A stdio backend entry that runs a script with node. */
const stdio = (name: string, args: string[]) => ({
  name,
  transport: 'stdio',
  command: process.execPath,
  args,
})

describe('stdio backends of either era', () => {
  let gw: RunningVmcp
  const dir = mkdtempSync(join(tmpdir(), 'vmcp-stdio-eras-'))
  const orbitPids = join(dir, 'orbit')
  const alphaPids = join(dir, 'alpha')

  beforeAll(async () => {
    gw = await startVmcp({
      backends: [
        stdio('orbit', [MODERN_STDIO, '--name', 'orbit', '--pid-file', orbitPids]),
        stdio('alpha', [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha', '--pid-file', alphaPids]),
      ],
    })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('probes each stdio backend in place, logs its era, and starts exactly one process per backend', async () => {
    expect(eraLines(gw, 'orbit')).toEqual(['modern'])
    expect(eraLines(gw, 'alpha')).toEqual(['legacy'])
    // A 2026-07-28 server is probed in place: its one process is the one serving.
    const orbit = started(orbitPids)
    expect(orbit).toHaveLength(1)
    expect(alive(orbit[0] as number)).toBe(true)
    // A 2025 server's probe process is handed to the v1 client: no second process.
    const alpha = started(alphaPids)
    expect(alpha).toHaveLength(1)
    expect(alive(alpha[0] as number)).toBe(true)
  })

  it.each(modes)(
    'a v2 client in %s mode lists and calls the 2026 and the 2025 stdio backend',
    async (_, mode, era) => {
      const client = await connectV2(gw.url, mode)
      expect(client.getProtocolEra()).toBe(era)
      const names = (await client.listTools()).tools.map((t) => t.name)
      expect(names).toEqual(expect.arrayContaining(['orbit_echo', 'orbit_confirm', 'alpha_echo']))
      expect(await callTextV2(client, 'orbit_echo', { text: 'o' })).toBe('orbit: o')
      expect(await callTextV2(client, 'alpha_echo', { text: 'a' })).toBe('alpha: a')
      // vmcp speaks 2026-07-28 to the backend whatever the caller's era.
      expect(await callTextV2(client, 'orbit_era')).toBe('modern')
      const read = await client.readResource({ uri: 'orbit://motd' })
      expect(read.contents[0]).toMatchObject({ text: 'hello from orbit' })
      await client.close()
    },
  )

  it('a v1 SDK client lists and calls the 2026 stdio backend, with progress', async () => {
    const client = await connectClient(gw.url)
    const names = (await client.listTools()).tools.map((t) => t.name)
    expect(names).toEqual(expect.arrayContaining(['orbit_echo', 'orbit_slow']))
    expect(await callText(client, 'orbit_echo', { text: 'v1' })).toBe('orbit: v1')
    const progress: number[] = []
    const res = await client.callTool({ name: 'orbit_slow', arguments: { steps: 3 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    })
    expect((res.content as Array<{ text: string }>)[0]?.text).toBe('done after 3')
    expect(progress).toEqual([1, 2, 3])
    const prompt = await client.getPrompt({ name: 'orbit_greet', arguments: { who: 'Ada' } })
    expect(prompt.messages[0]?.content).toMatchObject({ text: 'Say hello to Ada' })
    await client.close()
  })

  it.each(modes)(
    'a v2 client in %s mode gets progress from the 2026 stdio backend on its request',
    async (_, mode) => {
      const client = await connectV2(gw.url, mode)
      const progress: number[] = []
      const res = await client.callTool(
        { name: 'orbit_slow', arguments: { steps: 4 } },
        { onprogress: (p) => progress.push(p.progress) },
      )
      expect(res.isError).toBeFalsy()
      expect(progress).toEqual([1, 2, 3, 4])
      await client.close()
    },
  )

  // The call is in flight at the backend once a later request through the same process
  // answers; the caller then gives up on it.
  const callers = [
    [
      'a modern caller closes its request stream',
      async () => {
        const client = await connectV2(gw.url, 'auto')
        return {
          text: (name: string, args = {}) => callTextV2(client, name, args),
          call: (signal: AbortSignal) =>
            client.callTool({ name: 'orbit_wait_forever', arguments: {} }, { signal }),
          close: () => client.close(),
        }
      },
    ],
    [
      'a 2025 session cancels it',
      async () => {
        const client = await connectClient(gw.url)
        return {
          text: (name: string, args = {}) => callText(client, name, args),
          call: (signal: AbortSignal) =>
            client.callTool({ name: 'orbit_wait_forever', arguments: {} }, undefined, { signal }),
          close: () => client.close(),
        }
      },
    ],
  ] as const
  it.each(callers)('cancels the 2026 stdio backend call when %s', async (_, connect) => {
    const client = await connect()
    const cancellations = async () =>
      (JSON.parse(await client.text('orbit_stats')) as { cancellations: number }).cancellations
    const before = await cancellations()
    const abort = new AbortController()
    const call = client.call(abort.signal)
    await client.text('orbit_echo', { text: 'in flight' })
    abort.abort()
    await expect(call).rejects.toThrow()
    await vi.waitFor(async () => expect(await cancellations()).toBe(before + 1), EVENTUALLY)
    await client.close()
  })

  it.each(modes)(
    'a v2 client in %s mode answers elicitation from the 2026 and the 2025 stdio backend',
    async (_, mode, era) => {
      const client = await connectV2(gw.url, mode, { capabilities: { elicitation: { form: {} } } })
      expect(client.getProtocolEra()).toBe(era)
      const asked: string[] = []
      acceptElicitations(client, asked)
      expect(await callTextV2(client, 'orbit_confirm', { action: 'launch' })).toBe(
        'orbit: launch confirmed',
      )
      expect(await callTextV2(client, 'alpha_ask_user', { question: 'stdio?' })).toBe('answer: yes')
      expect(asked).toEqual(['launch?', 'stdio?'])
      await client.close()
    },
  )

  it("gives a v1 client real elicitation and sampling requests for the 2026 stdio backend's input_required", async () => {
    const client = await connectClient(gw.url, {
      capabilities: { elicitation: { form: {} }, sampling: {} },
    })
    const seen: string[] = []
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      seen.push(req.params.message)
      return { action: 'accept', content: { ok: false } }
    })
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'Oslo' },
      model: 'test-model',
    }))
    expect(await callText(client, 'orbit_confirm', { action: 'land' })).toBe('orbit: land refused')
    expect(seen).toEqual(['land?'])
    expect(await callText(client, 'orbit_ask_llm', { prompt: 'capital?' })).toBe(
      'orbit sampled: Oslo',
    )
    await client.close()
  })

  it.each(modes)(
    "a v2 client in %s mode answers the 2026 stdio backend's roots request",
    async (_, mode) => {
      const client = await connectV2(gw.url, mode, { capabilities: { roots: {} } })
      client.setRequestHandler('roots/list', async () => ({
        roots: [{ uri: 'file:///work', name: 'work' }],
      }))
      expect(await callTextV2(client, 'orbit_roots')).toBe('work')
      await client.close()
    },
  )

  it("gives a v1 client a real roots/list request for the 2026 stdio backend's input_required", async () => {
    const client = await connectClient(gw.url, { capabilities: { roots: {} } })
    client.setRequestHandler(ListRootsRequestSchema, async () => ({
      roots: [{ uri: 'file:///home', name: 'home' }],
    }))
    expect(await callText(client, 'orbit_roots')).toBe('home')
    await client.close()
  })

  it('asks the 2025 session whose call needs input, not another one waiting on the same process', async () => {
    const caps = { capabilities: { elicitation: { form: {} } } }
    const [waiting, asking] = [await connectClient(gw.url, caps), await connectClient(gw.url, caps)]
    const heard = { waiting: [] as string[], asking: [] as string[] }
    for (const [who, client] of [['waiting', waiting], ['asking', asking]] as const) {
      client.setRequestHandler(ElicitRequestSchema, async (req) => {
        heard[who].push(req.params.message)
        return { action: 'accept', content: { ok: who === 'asking' } }
      })
    }
    // The waiting session's call reached the process first and stays in flight there.
    const abort = new AbortController()
    const pending = waiting.callTool({ name: 'orbit_wait_forever', arguments: {} }, undefined, {
      signal: abort.signal,
    })
    await callText(waiting, 'orbit_echo', { text: 'in flight' })
    expect(await callText(asking, 'orbit_confirm', { action: 'mine' })).toBe('orbit: mine confirmed')
    expect(heard).toEqual({ waiting: [], asking: ['mine?'] })
    abort.abort()
    await expect(pending).rejects.toThrow()
    await Promise.all([waiting.close(), asking.close()])
  })

  it("hears the 2026 stdio backend's list changes and tells modern listeners and 2025 sessions", async () => {
    await expectToolListChangeHeard(gw.url, 'orbit')
  })

  const health = async (name: string) => {
    const status = (await (await fetch(`${gw.base}/status`)).json()) as {
      backends: Array<{ name: string; health: string }>
    }
    return status.backends.find((b) => b.name === name)?.health
  }

  it('restarts a 2026 stdio backend that exits, probing the new process in place, with its stderr as the reason', async () => {
    const client = await connectClient(gw.url)
    const res = await client.callTool({ name: 'orbit_crash', arguments: {} })
    expect(JSON.stringify(res.content)).toContain('bye')
    await vi.waitFor(
      () =>
        expect(
          gw.logs.some(
            (l) =>
              l.includes('"backend unavailable"') &&
              l.includes('"backend":"orbit"') &&
              l.includes('process exited: orbit crashing on request'),
          ),
        ).toBe(true),
      EVENTUALLY,
    )
    await vi.waitFor(async () => expect(started(orbitPids)).toHaveLength(2), EVENTUALLY)
    await vi.waitFor(async () => expect(await health('orbit')).toBe('healthy'), EVENTUALLY)
    expect(await callText(client, 'orbit_echo', { text: 'reborn' })).toBe('orbit: reborn')
    expect(await callText(client, 'orbit_era')).toBe('modern')
    // Probed again in place: one new process, and the same era is not logged twice.
    expect(eraLines(gw, 'orbit')).toEqual(['modern'])
    const [first, second] = started(orbitPids) as [number, number]
    expect(alive(first)).toBe(false)
    expect(alive(second)).toBe(true)
    await client.close()
  })

  it('restarts a 2025 stdio backend with one new process, probed in place', async () => {
    const client = await connectClient(gw.url)
    const res = await client.callTool({ name: 'alpha_crash', arguments: {} })
    expect(res.isError).toBe(true)
    await vi.waitFor(async () => expect(started(alphaPids)).toHaveLength(2), EVENTUALLY)
    await vi.waitFor(async () => expect(await health('alpha')).toBe('healthy'), EVENTUALLY)
    expect(await callText(client, 'alpha_echo', { text: 'reborn' })).toBe('alpha: reborn')
    expect(eraLines(gw, 'alpha')).toEqual(['legacy'])
    expect(started(alphaPids).map(alive)).toEqual([false, true])
    await client.close()
  })
})

describe('stdio backends that answer the probe in other ways', () => {
  it('serves a dual-era stdio server (it also answers initialize) in 2026-07-28', async () => {
    const gw = await startVmcp({
      backends: [
        stdio('twin', [MODERN_STDIO, '--name', 'twin', '--legacy', 'serve']),
      ],
    })
    try {
      expect(eraLines(gw, 'twin')).toEqual(['modern'])
      const client = await connectClient(gw.url)
      expect(await callText(client, 'twin_era')).toBe('modern')
      await client.close()
    } finally {
      await gw.close()
    }
  })

  it('serves a 2025 stdio server that exits on the probe from a fresh process, the probe one gone', async () => {
    const pids = join(mkdtempSync(join(tmpdir(), 'vmcp-stdio-strict-')), 'pids')
    const gw = await startVmcp({
      backends: [
        stdio('strict', [
            TEST_BACKEND,
            '--transport',
            'stdio',
            '--name',
            'strict',
            '--exit-before-initialize',
            '--pid-file',
            pids,
          ]),
      ],
    })
    try {
      expect(eraLines(gw, 'strict')).toEqual(['legacy'])
      const client = await connectClient(gw.url)
      expect(await callText(client, 'strict_echo', { text: 's' })).toBe('strict: s')
      await client.close()
      const [probe, serving, ...more] = started(pids)
      expect(more).toEqual([])
      expect(alive(probe as number)).toBe(false)
      expect(alive(serving as number)).toBe(true)
    } finally {
      await gw.close()
    }
  })

  it('probes every restarted stdio server, so one that changed era is served in its new one, both ways', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-stdio-flip-'))
    const which = join(dir, 'era')
    const script = join(dir, 'flip.mjs')
    // The same command starts a 2025 or a 2026-07-28-only server, as the file says.
    writeFileSync(which, 'legacy')
    writeFileSync(
      script,
      [
        "import { readFileSync } from 'node:fs'",
        `const modern = readFileSync(${JSON.stringify(which)}, 'utf8') === 'modern'`,
        "if (!modern) process.argv.push('--transport', 'stdio')",
        "process.argv.push('--name', 'flip')",
        `await import(modern ? ${JSON.stringify(MODERN_STDIO)} : ${JSON.stringify(TEST_BACKEND)})`,
      ].join('\n'),
    )
    const gw = await startVmcp({
      backends: [stdio('flip', [script])],
    })
    try {
      expect(eraLines(gw, 'flip')).toEqual(['legacy'])
      const client = await connectClient(gw.url)
      writeFileSync(which, 'modern')
      await client.callTool({ name: 'flip_crash', arguments: {} })
      await vi.waitFor(() => expect(eraLines(gw, 'flip')).toEqual(['legacy', 'modern']), EVENTUALLY)
      await vi.waitFor(async () => expect(await callText(client, 'flip_era')).toBe('modern'), EVENTUALLY)
      expect(gw.logs.some((l) => l.includes('"backend protocol era changed"'))).toBe(true)
      // And back: a 2026-07-28 verdict does not keep a 2025 server from being served.
      writeFileSync(which, 'legacy')
      await client.callTool({ name: 'flip_crash', arguments: {} })
      await vi.waitFor(() => expect(eraLines(gw, 'flip')).toEqual(['legacy', 'modern', 'legacy']), EVENTUALLY)
      await vi.waitFor(async () => expect(await callText(client, 'flip_echo', { text: 'back' })).toBe('flip: back'), EVENTUALLY)
      await client.close()
    } finally {
      await gw.close()
    }
  })

  it('keeps no verdict for a stdio server that dies at startup, and reports its stderr', async () => {
    const gw = await startVmcp({
      backends: [
        stdio('ghost', ['/nonexistent/server.mjs']),
      ],
      operational: { discoveryTimeout: '5m' },
    })
    try {
      const status = (await (await fetch(`${gw.base}/status`)).json()) as {
        backends: Array<{ name: string; health: string; error?: string }>
      }
      expect(status.backends[0]).toMatchObject({ name: 'ghost', health: 'unhealthy' })
      // Said once, not once per process tried.
      expect(status.backends[0]?.error).toMatch(/: Error: Cannot find module '\/nonexistent\/server\.mjs'$/)
      expect(eraLines(gw, 'ghost')).toEqual([])
    } finally {
      await gw.close()
    }
  })
})
