import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../support/http.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname
const EVERYTHING = join(root, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js')
const CONFORMANCE = join(root, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')

interface Check {
  id: string
  status: string
  errorMessage?: string
}

/** Runs the conformance server suite (0.1.13, the last that runs on Node 20) and reads each scenario's checks. */
async function conformance(url: string): Promise<Map<string, Check[]>> {
  const out = mkdtempSync(join(tmpdir(), 'vmcp-conformance-'))
  try {
    // Exit code 1 just means some scenario failed; the per-scenario files are the result.
    await run(process.execPath, [CONFORMANCE, 'server', '--url', url, '-o', out], { timeout: 240_000 }).catch(
      (err: { code?: number }) => {
        if (err.code !== 1) throw err
      },
    )
    const results = new Map<string, Check[]>()
    for (const dir of readdirSync(out)) {
      const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '')
      results.set(scenario, JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8')) as Check[])
    }
    return results
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

const passed = (checks: Check[]) => checks.length > 0 && checks.every((c) => c.status !== 'FAILURE')

describe('MCP conformance (server suite) through vmcp vs server-everything directly', () => {
  let gw: RunningVmcp
  let direct: { url: string; kill: () => void }

  beforeAll(async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (c: Buffer) => {
        if (c.toString().includes('listening on port')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`server-everything exited ${code}`)))
    })
    direct = { url: `http://localhost:${port}/mcp`, kill: () => child.kill() }
    gw = await startVmcp({
      backends: [{ name: 'everything', transport: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'] }],
      // One backend: names pass through unchanged, as the suite expects.
      aggregation: { prefixMode: 'on-conflict' },
    })
  }, 60_000)
  afterAll(async () => {
    direct?.kill()
    await gw?.close()
  })

  it('passes every scenario that passes directly (unknown tools answer -32602 by design)', async () => {
    const [viaDirect, viaVmcp] = await Promise.all([
      conformance(direct.url),
      conformance(gw.url.replace('127.0.0.1', 'localhost')),
    ])
    expect(viaVmcp.size).toBe(viaDirect.size)

    // The backend's tools: a scenario may only "fail" through vmcp when it calls a tool the
    // backend does not have. MCP §Tools/Error Handling makes that a JSON-RPC -32602 protocol
    // error (vmcp); the SDK's McpServer instead answers with an isError result, which the
    // suite happens to accept.
    const client = new Client({ name: 'probe', version: '1' })
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url)))
    const tools = new Set((await client.listTools()).tools.map((t) => t.name))
    await client.close()

    const regressions: string[] = []
    for (const [scenario, checks] of viaDirect) {
      if (!passed(checks)) continue
      const mine = viaVmcp.get(scenario) ?? []
      if (passed(mine)) continue
      const unknownTool = mine.every((c) => {
        const m = /-32602: Unknown tool: (\S+)/.exec(c.errorMessage ?? '')
        return c.status !== 'FAILURE' || (m?.[1] !== undefined && !tools.has(m[1]))
      })
      if (!unknownTool) regressions.push(`${scenario}: ${mine.map((c) => c.errorMessage).join('; ')}`)
    }
    expect(regressions).toEqual([])
    // vmcp's own Origin/Host checks: DNS rebinding protection passes through vmcp.
    expect(passed(viaVmcp.get('dns-rebinding-protection') ?? [])).toBe(true)
  }, 300_000)
})
