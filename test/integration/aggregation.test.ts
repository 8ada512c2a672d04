import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const EVERYTHING = new URL(
  '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js',
  import.meta.url,
).pathname

describe('aggregation of stdio, Streamable HTTP and server-everything backends', () => {
  let beta: RunningBackend
  let gw: RunningVmcp
  let client: Client

  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
    gw = await startVmcp({
      backends: [
        {
          name: 'alpha',
          transport: 'stdio',
          command: process.execPath,
          // Small pages force vmcp to follow nextCursor for every list kind.
          args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha', '--tools', '5', '--page-size', '2', '--extra-prompts', '3', '--extra-resources', '3'],
        },
        { name: 'beta', transport: 'streamable-http', url: beta.url },
        { name: 'everything', transport: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'] },
      ],
    })
    client = await connectClient(gw.url)
  })
  afterAll(async () => {
    await client?.close()
    await gw?.close()
    await beta?.close()
  })

  it('lists every backend tool under a unique prefixed name, following pagination', async () => {
    const names = (await client.listTools()).tools.map((t) => t.name)
    for (const n of ['alpha_echo', 'beta_echo', 'everything_echo', 'everything_get-sum']) {
      expect(names).toContain(n)
    }
    expect(names.filter((n) => /^alpha_tool_\d$/.test(n)).sort()).toEqual([
      'alpha_tool_0',
      'alpha_tool_1',
      'alpha_tool_2',
      'alpha_tool_3',
      'alpha_tool_4',
    ])
    expect(new Set(names).size).toBe(names.length)
    expect(names.every((n) => /^[A-Za-z0-9_.-]{1,64}$/.test(n))).toBe(true)
  })

  it('routes calls to the owning backend under its original name', async () => {
    expect(await callText(client, 'alpha_echo', { text: 'hi' })).toBe('alpha: hi')
    expect(await callText(client, 'beta_echo', { text: 'hi' })).toBe('beta: hi')
    expect(await callText(client, 'alpha_tool_3')).toBe('tool_3')
    expect(await callText(client, 'everything_get-sum', { a: 2, b: 3 })).toContain('5')
  })

  it('returns JSON-RPC -32602 for an unknown tool', async () => {
    await expect(client.callTool({ name: 'nope_tool', arguments: {} })).rejects.toMatchObject({
      code: -32602,
    })
  })

  it('lists resources and templates unrewritten; the first backend in config order wins a URI', async () => {
    const resources = (await client.listResources()).resources
    const uris = resources.map((r) => r.uri)
    expect(uris.filter((u) => u === 'test://static')).toHaveLength(1)
    expect(uris).toContain('test://extra/2')
    expect(uris).toContain('demo://resource/static/document/architecture.md')
    const read = await client.readResource({ uri: 'test://static' })
    expect(read.contents[0]).toMatchObject({ uri: 'test://static', text: 'static content' })
    expect(gw.logs.some((l) => l.includes('resource test://static is also offered by alpha'))).toBe(true)
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)
    expect(templates).toContain('test://items/{id}')
    const item = await client.readResource({ uri: 'test://items/7' })
    expect(item.contents[0]?.uri).toBe('test://items/7')
    const doc = await client.readResource({ uri: 'demo://resource/static/document/architecture.md' })
    expect(doc.contents[0]?.uri).toBe('demo://resource/static/document/architecture.md')
  })

  it('answers -32002 for a resource no backend owns', async () => {
    await expect(client.readResource({ uri: 'nowhere://x' })).rejects.toMatchObject({ code: -32002 })
  })

  it('lists and gets prompts under prefixed names', async () => {
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name)
    expect(prompts).toEqual(expect.arrayContaining(['alpha_greet', 'beta_greet', 'alpha_prompt_2', 'everything_simple-prompt']))
    const got = await client.getPrompt({ name: 'beta_greet', arguments: { name: 'Ada' } })
    expect(JSON.stringify(got.messages)).toContain('Ada')
  })

  it('routes completions for prompts and resource templates', async () => {
    const byPrompt = await client.complete({
      ref: { type: 'ref/prompt', name: 'alpha_greet' },
      argument: { name: 'name', value: 'al' },
    })
    expect(byPrompt.completion.values.sort()).toEqual(['albert', 'alice'])
    const byTemplate = await client.complete({
      ref: { type: 'ref/resource', uri: 'test://items/{id}' },
      argument: { name: 'id', value: 'item-1' },
    })
    expect(byTemplate.completion.values).toEqual(expect.arrayContaining(['item-1', 'item-10']))
  })

  it('fans logging/setLevel out and reports healthy backends on /status', async () => {
    await expect(client.setLoggingLevel('debug')).resolves.toEqual({})
    const status = (await (await fetch(`${gw.base}/status`)).json()) as {
      backends: Array<{ name: string; health: string; tools: number }>
    }
    expect(status.backends.map((b) => [b.name, b.health])).toEqual([
      ['alpha', 'healthy'],
      ['beta', 'healthy'],
      ['everything', 'healthy'],
    ])
    expect(status.backends[0]?.tools).toBeGreaterThan(5)
  })
})

describe('manual conflict resolution: one line per conflict, and the fix it offers works', () => {
  let alpha: RunningBackend
  let beta: RunningBackend
  const only = (backend: string) => ({ backend, filter: ['echo'] })
  const onlyGreet = (backend: string) => ({ backend, filter: ['greet'] })
  const backends = () => [
    { name: 'alpha', transport: 'streamable-http', url: alpha.url },
    { name: 'beta', transport: 'streamable-http', url: beta.url },
  ]

  beforeAll(async () => {
    alpha = await startTestBackend(['--name', 'alpha'])
    beta = await startTestBackend(['--name', 'beta'])
  })
  afterAll(async () => {
    await alpha?.close()
    await beta?.close()
  })

  it('hides a tool and a prompt offered twice, says once how to rename each, and the renames work', async () => {
    const conflicted = await startVmcp({
      backends: backends(),
      aggregation: {
        conflictResolution: 'manual',
        tools: [only('alpha'), only('beta')],
        prompts: [onlyGreet('alpha'), onlyGreet('beta')],
      },
    })
    const fixes: string[] = []
    try {
      const client = await connectClient(conflicted.url)
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([])
      expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual([])
      await client.close()
      const errors = conflicted.logs.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50)
      // Once each, however often the view was rebuilt while the backends came up.
      expect(errors.map((e) => e.msg.split(' hidden')[0])).toEqual([
        'tool echo is offered by alpha and beta;',
        'prompt greet is offered by alpha and beta;',
      ])
      for (const e of errors) fixes.push(/: aggregation\.(?:tools|prompts): (\[.*\])$/.exec(e.msg)?.[1] ?? '')
      expect(errors[1]?.msg).toContain('aggregation.prompts: [{ backend: beta, overrides: { greet: { name: beta_greet } } }]')
    } finally {
      await conflicted.close()
    }

    // The operator pastes the offered overrides (YAML flow syntax) next to their filters.
    const { parse } = await import('yaml')
    const [toolFix, promptFix] = fixes.map((f) => parse(f) as Array<{ backend: string; overrides: object }>)
    const merged = (entries: Array<{ backend: string; filter: string[] }>, fix: Array<{ backend: string; overrides: object }>) =>
      entries.map((e) => ({ ...e, overrides: fix?.find((f) => f.backend === e.backend)?.overrides ?? {} }))
    const fixed = await startVmcp({
      backends: backends(),
      aggregation: {
        conflictResolution: 'manual',
        tools: merged([only('alpha'), only('beta')], toolFix ?? []),
        prompts: merged([onlyGreet('alpha'), onlyGreet('beta')], promptFix ?? []),
      },
    })
    try {
      const client = await connectClient(fixed.url)
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['beta_echo', 'echo'])
      expect((await client.listPrompts()).prompts.map((p) => p.name).sort()).toEqual(['beta_greet', 'greet'])
      expect(await callText(client, 'beta_echo', { text: 'hi' })).toBe('beta: hi')
      expect(await callText(client, 'echo', { text: 'hi' })).toBe('alpha: hi')
      const got = await client.getPrompt({ name: 'beta_greet', arguments: { name: 'Ada' } })
      expect(JSON.stringify(got.messages)).toContain('Say hello to Ada.')
      await client.close()
      expect(fixed.logs.filter((l) => l.includes('"level":50'))).toEqual([])
    } finally {
      await fixed.close()
    }
  })
})
