import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, TEST_BACKEND, type RunningBackend } from '../support/backends.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = `${ROOT}dist/src/cli/main.js`

const config = (httpUrl: string) => ({
  backends: [
    { name: 'alpha', transport: 'stdio', command: process.execPath, args: [TEST_BACKEND, '--transport', 'stdio', '--name', 'alpha'] },
    { name: 'beta', transport: 'streamable-http', url: httpUrl },
    // Nothing listens on the discard port: this backend is down.
    { name: 'down', transport: 'streamable-http', url: 'http://127.0.0.1:9/mcp' },
  ],
  aggregation: {
    tools: [
      { backend: 'alpha', filter: ['echo', 'whoami'], overrides: { whoami: { name: 'who' } } },
      { backend: 'beta', filter: ['echo'] },
    ],
  },
  operational: { discoveryTimeout: '20s' },
})

describe('listing the exposed tools', () => {
  let beta: RunningBackend
  beforeAll(async () => {
    beta = await startTestBackend(['--name', 'beta'])
  })
  afterAll(async () => {
    await beta?.close()
  })

  it('vmcp tools --config F connects like serve, prints each tool with its backend, names what is down, exits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-tools-'))
    const file = join(dir, 'vmcp.yaml')
    writeFileSync(file, stringify(config(beta.url)))
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'tools', '--config', file], { cwd: ROOT, timeout: 90_000 }, (e, stdout, stderr) => {
        resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, stdout, stderr })
      })
    })
    expect(r.stdout.split('\n')).toEqual([
      'TOOL        BACKEND  BACKEND TOOL',
      'alpha_echo  alpha    echo',
      'beta_echo   beta     echo',
      'who         alpha    whoami',
      '',
    ])
    expect(r.stderr).toMatch(/^down: unhealthy: /m)
    expect(r.code).toBe(0)
  })

  describe('/status?tools=1', () => {
    let gw: RunningVmcp
    beforeAll(async () => {
      gw = await startVmcp(config(beta.url))
    })
    afterAll(async () => {
      await gw?.close()
    })

    it('lists the same names with their backends, in list order; plain /status stays as it was', async () => {
      const body = (await (await fetch(`${gw.base}/status?tools=1`)).json()) as { tools: unknown[] }
      expect(body.tools).toEqual([
        { name: 'alpha_echo', backend: 'alpha', tool: 'echo' },
        { name: 'beta_echo', backend: 'beta', tool: 'echo' },
        { name: 'who', backend: 'alpha', tool: 'whoami' },
      ])
      const plain = (await (await fetch(`${gw.base}/status`)).json()) as Record<string, unknown>
      expect(plain).not.toHaveProperty('tools')
    })
  })
})
