#!/usr/bin/env node
// npm run conformance:2026 — the MCP 2026-07-28 server scenarios of @modelcontextprotocol/conformance
// (alpha line; it needs Node >= 22, taken from npm as the `node@22` package when this Node is older)
// against the 2026-07-28 fixture backend directly and through vmcp. Fails when a scenario that
// passes directly fails through vmcp. Run after `npm run build`.
//
//   CONFORMANCE_VERSION=0.2.0-alpha.12   the conformance release to run
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const VERSION = process.env.CONFORMANCE_VERSION ?? '0.2.0-alpha.12'
const REVISION = '2026-07-28'
const { createLogger, createVmcp, parseConfigText } = await import(join(root, 'dist/src/index.js'))

/** Runs the server suite for one URL under Node 22 from npm; returns scenario → passed. */
async function conformance(url) {
  const out = mkdtempSync(join(tmpdir(), 'vmcp-conformance-2026-'))
  try {
    const node22 = Number(process.versions.node.split('.')[0]) >= 22 ? [] : ['--package=node@22']
    const pkg = `--package=@modelcontextprotocol/conformance@${VERSION}`
    const args = ['exec', '--yes', '--engine-strict=false', ...node22, pkg, '--']
    const cli = ['conformance', 'server', '--url', url, '--requirements', REVISION, '-o', out]
    // Outside the project, so its engine settings do not refuse the Node 22-only package.
    const options = { cwd: tmpdir(), timeout: 900_000, maxBuffer: 64 << 20 }
    // Exit code 1 only means some scenario failed; the per-scenario files are the result.
    await run('npm', [...args, ...cli], options).catch((err) => {
      if (err.code !== 1) throw err
    })
    if (readdirSync(out).length === 0)
      throw new Error(`conformance ${VERSION} produced no results for ${url}`)
    const results = new Map()
    for (const dir of readdirSync(out)) {
      const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '')
      const checks = JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8'))
      results.set(scenario, checks.length > 0 && checks.every((c) => c.status !== 'FAILURE'))
    }
    return results
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

const backend = spawn(
  process.execPath,
  [join(root, 'fixtures/backends/modern-http.mjs'), '--name', 'conformance', '--conformance'],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
)
const backendUrl = await new Promise((resolve, reject) => {
  createInterface({ input: backend.stdout }).once('line', (line) => resolve(JSON.parse(line).url))
  backend.once('exit', (code) => reject(new Error(`fixture backend exited (${code})`)))
})
const config = parseConfigText(
  JSON.stringify({
    server: { host: '127.0.0.1', port: 0 },
    backends: [{ name: 'conformance', transport: 'streamable-http', url: backendUrl }],
    // One backend: names pass through unchanged, as the suite expects.
    aggregation: { prefixMode: 'on-conflict' },
  }),
  { baseDir: root, env: process.env },
)
const vmcp = createVmcp({ config, logger: createLogger({ level: 'warn' }) })
const { listenUrl } = await vmcp.start()

let regressions = 0
try {
  const local = (u) => u.replace('127.0.0.1', 'localhost')
  const [direct, through] = await Promise.all([
    conformance(local(backendUrl)),
    conformance(local(listenUrl)),
  ])
  const rows = [...new Set([...direct.keys(), ...through.keys()])].sort()
  for (const scenario of rows) {
    const d = direct.get(scenario)
    const v = through.get(scenario)
    const bad = d === true && v !== true
    if (bad) regressions++
    const mark = (x) => (x === undefined ? '-' : x ? 'pass' : 'FAIL')
    console.log(
      `${bad ? '✗' : ' '} ${scenario.padEnd(48)} direct ${mark(d).padEnd(5)} via vmcp ${mark(v)}`,
    )
  }
  const passing = (m) => [...m.values()].filter(Boolean).length
  console.log(
    `\n${REVISION} scenarios: direct ${passing(direct)}/${direct.size}, via vmcp ${passing(through)}/${through.size}`,
  )
  console.log(
    regressions
      ? `${regressions} scenario(s) pass directly but fail through vmcp`
      : 'no scenario regresses through vmcp',
  )
} finally {
  await vmcp.close()
  backend.kill()
}
process.exitCode = regressions ? 1 : 0
