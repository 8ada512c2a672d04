import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import {
  PromptListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { callText, connectClient, spawnVmcp, type VmcpProcess } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

// Hot reload as operators use it: a real `vmcp serve` process, SIGHUP or --watch, a real SDK
// client whose session must survive every reload.

interface Backends {
  [name: string]: string
}

const yaml = (backends: Backends, extra = '') =>
  [
    'backends:',
    ...Object.entries(backends).map(([name, url]) => `  - { name: ${name}, transport: streamable-http, url: ${JSON.stringify(url)} }`),
    extra,
  ].join('\n')

describe.each([
  { how: 'SIGHUP', args: [] as string[] },
  { how: '--watch', args: ['--watch'] },
])('hot reload by $how', ({ how, args }) => {
  let alpha: RunningBackend
  let beta: RunningBackend
  let gamma: RunningBackend
  let dir: string
  let file: string
  let vmcp: VmcpProcess
  let client: Client
  let toolsChanged = 0
  let promptsChanged = 0

  // Writes the file as editors do, alternately in place and as a new file renamed over the old
  // one, then triggers a reload.
  let writes = 0
  const apply = async (text: string): Promise<number> => {
    const mark = vmcp.lines.length
    const tmp = join(dir, '.vmcp.yaml.swp')
    if (writes++ % 2 === 0) writeFileSync(file, text)
    else {
      writeFileSync(tmp, text)
      renameSync(tmp, file)
    }
    if (how === 'SIGHUP') vmcp.child.kill('SIGHUP')
    return mark
  }
  const reloaded = async (text: string, listChanged = true) => {
    const before = toolsChanged
    const mark = await apply(text)
    const line = await vmcp.waitFor('configuration reloaded', mark)
    if (listChanged) await vi.waitFor(() => expect(toolsChanged).toBeGreaterThan(before), EVENTUALLY)
    return line
  }
  const toolNames = async () => (await client.listTools()).tools.map((t) => t.name).sort()

  beforeAll(async () => {
    ;[alpha, beta, gamma] = await Promise.all([
      startTestBackend(['--name', 'alpha']),
      startTestBackend(['--name', 'beta']),
      startTestBackend(['--name', 'gamma']),
    ])
    dir = mkdtempSync(join(tmpdir(), 'vmcp-reload-'))
    file = join(dir, 'vmcp.yaml')
    writeFileSync(file, yaml({ alpha: alpha.url }))
    vmcp = spawnVmcp(['--config', file, '--port', '0', ...args])
    const ready = await vmcp.waitFor('ready')
    client = await connectClient(String(ready.url))
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      toolsChanged++
    })
    client.setNotificationHandler(PromptListChangedNotificationSchema, async () => {
      promptsChanged++
    })

  })
  afterAll(async () => {
    await client?.close()
    await vmcp?.kill()
    await Promise.all([alpha, beta, gamma].map((b) => b?.close()))
  })

  it('adds a backend: the session hears list_changed for tools and prompts, and calls it; alpha untouched', async () => {
    expect(await callText(client, 'alpha_echo', { text: 'before' })).toBe('alpha: before')
    const line = await reloaded(yaml({ alpha: alpha.url, beta: beta.url }))
    // beta's resources have alpha's URIs (the first backend keeps them): that list did not move.
    await vi.waitFor(() => expect(promptsChanged).toBe(1), EVENTUALLY)
    expect(line).toMatchObject({ added: ['beta'], removed: [], changed: [], restartRequired: [] })
    expect(await toolNames()).toEqual(expect.arrayContaining(['alpha_echo', 'beta_echo']))
    // Same client, same session: no reconnect happened.
    expect(await callText(client, 'beta_echo', { text: 'hi' })).toBe('beta: hi')
    expect(await callText(client, 'alpha_echo', { text: 'after' })).toBe('alpha: after')
  })

  it('changes a backend (new URL): calls reach the new server under the same names', async () => {
    // Same tools behind the new URL: the list did not move, so no list_changed is due.
    const line = await reloaded(yaml({ alpha: alpha.url, beta: gamma.url }), false)
    expect(line).toMatchObject({ added: [], removed: [], changed: ['beta'] })
    expect(await callText(client, 'beta_echo', { text: 'hi' })).toBe('gamma: hi')
  })

  it('re-reads the aggregation rules', async () => {
    const line = await reloaded(yaml({ alpha: alpha.url, beta: gamma.url }, "aggregation: { prefixFormat: '{backend}__' }"))
    expect(line).toMatchObject({ added: [], removed: [], changed: [], aggregation: true })
    expect(await toolNames()).toContain('beta__echo')
    expect(await callText(client, 'alpha__echo', { text: 'x' })).toBe('alpha: x')
  })

  it('removes a backend: its tools go, the rest keep answering', async () => {
    const line = await reloaded(yaml({ alpha: alpha.url }))
    expect(line).toMatchObject({ added: [], removed: ['beta'], changed: [], aggregation: true })
    const names = await toolNames()
    expect(names.filter((n) => n.startsWith('beta'))).toEqual([])
    expect(await callText(client, 'alpha_echo', { text: 'still' })).toBe('alpha: still')
  })

  it('an invalid file changes nothing: every error is logged, the session keeps working', async () => {
    const mark = await apply(`${yaml({ alpha: alpha.url, 'bad name': beta.url })}\nsever: { port: 1 }\n`)
    await vmcp.waitFor('the running configuration stays', mark)
    const rejected = vmcp.lines.slice(mark).filter((l) => l.msg.startsWith('new configuration rejected: '))
    expect(rejected.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^new configuration rejected: backends\[1\]\.name: /),
        expect.stringMatching(/^new configuration rejected: sever: unknown key/),
      ]),
    )
    expect(rejected.every((l) => l.level === 50)).toBe(true)
    expect(vmcp.lines.slice(mark).map((l) => l.msg)).not.toContain('configuration reloaded')
    expect(await callText(client, 'alpha_echo', { text: 'kept' })).toBe('alpha: kept')
  })

  it('a setting that needs a restart is reported and kept; the live parts still apply', async () => {
    const line = await reloaded(yaml({ alpha: alpha.url, beta: beta.url }, 'name: renamed\nserver: { maxBodyBytes: 2048 }'))
    expect(line).toMatchObject({ added: ['beta'], restartRequired: ['name', 'server.maxBodyBytes'] })
    const warned = vmcp.lines.filter((l) => l.msg.endsWith('restart required to apply it; the running value stays'))
    expect(warned.map((l) => l.path)).toEqual(expect.arrayContaining(['name', 'server.maxBodyBytes']))
    expect(await callText(client, 'beta_echo', { text: 'back' })).toBe('beta: back')
  })
})

describe('hot reload of outgoing auth', () => {
  let alpha: RunningBackend
  let vmcp: VmcpProcess | undefined
  let client: Client | undefined
  beforeAll(async () => {
    alpha = await startTestBackend(['--name', 'alpha'])
  })
  afterAll(async () => {
    await client?.close()
    await vmcp?.kill()
    await alpha?.close()
  })

  it('a new header_injection secret reaches the backend; the session carries on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-reload-'))
    const file = join(dir, 'vmcp.yaml')
    writeFileSync(join(dir, 'key-1'), 'first-key\n')
    writeFileSync(join(dir, 'key-2'), 'second-key\n')
    const withKey = (key: string) =>
      yaml(
        { alpha: alpha.url },
        `outgoingAuth: { backends: { alpha: { type: header_injection, headerInjection: { headerName: X-Api-Key, value: { file: ${key} } } } } }`,
      )
    writeFileSync(file, withKey('key-1'))
    vmcp = spawnVmcp(['--config', file, '--port', '0'])
    client = await connectClient(String((await vmcp.waitFor('ready')).url))
    expect(JSON.parse(await callText(client, 'alpha_whoami'))).toMatchObject({ 'x-api-key': 'first-key' })
    writeFileSync(file, withKey('key-2'))
    const mark = vmcp.lines.length
    vmcp.child.kill('SIGHUP')
    expect(await vmcp.waitFor('configuration reloaded', mark)).toMatchObject({ changed: ['alpha'] })
    expect(JSON.parse(await callText(client, 'alpha_whoami'))).toMatchObject({ 'x-api-key': 'second-key' })
  })
})

describe('hot reload of an unchanged file', () => {
  let vmcp: VmcpProcess | undefined
  afterEach(async () => {
    await vmcp?.kill()
  })

  it('SIGHUP with an unchanged file restarts nothing and keeps vmcp running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-reload-'))
    const file = join(dir, 'vmcp.yaml')
    const notes = new URL('../../fixtures/backends/demo-notes-stdio.mjs', import.meta.url).pathname
    writeFileSync(file, `backends:\n  - { name: notes, transport: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(notes)}] }\n`)
    vmcp = spawnVmcp(['--config', file, '--port', '0'])
    await vmcp.waitFor('ready')
    const mark = vmcp.lines.length
    vmcp.child.kill('SIGHUP')
    const line = await vmcp.waitFor('configuration reloaded', mark)
    expect(line).toMatchObject({ added: [], removed: [], changed: [], aggregation: false, restartRequired: [] })
    // No backend was stopped or started again.
    expect(vmcp.lines.slice(mark).filter((l) => l.backend === 'notes')).toEqual([])
  })
})
