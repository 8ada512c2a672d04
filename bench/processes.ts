import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

/** Repository root (this file runs from dist/bench/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const TEST_BACKEND = resolve(ROOT, 'fixtures/backends/test-backend.mjs')
export const MODERN_BACKEND = resolve(ROOT, 'fixtures/backends/modern-http.mjs')
export const VMCP_CLI = resolve(ROOT, 'dist/src/cli/main.js')

/**
 * Node flags of every process the bench starts (backend, bare relay, vmcp). V8's memory reducer
 * shrinks a heap, young generation included, when a process has gone quiet some 8 s after a full
 * GC, as a vmcp does after its startup while it waits for its first turn (12 s of quiet after
 * load with only young-generation GCs did not set it off); a process it hit then scavenges more
 * often until its young generation has grown back, for longer than a row's turns last. Whether
 * it hits a process depends on how long that process waits for its turn (the row order), not on
 * the code measured: in two runs of four identical vmcp processes at c=32, the three it hit used
 * 82–90 µs of CPU per call, the five others 77–82 µs. Off in every process alike, each row is
 * measured in the same steady state.
 */
export const NODE_FLAGS: readonly string[] = ['--no-memory-reducer']

export interface Child {
  readonly name: string
  readonly proc: ChildProcess
  readonly pid: number
  /** The last lines the child wrote to stderr (for failure messages). */
  tail(): string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>
}

const live = new Set<Child>()

/** Last-resort cleanup: kills every child this bench started that is still running. */
export function killAll(): void {
  for (const c of live) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
  }
  live.clear()
}

function track(name: string, proc: ChildProcess, onLine?: (line: string) => void): Child {
  if (proc.pid === undefined) throw new Error(`${name}: spawn failed`)
  const lines: string[] = []
  if (proc.stderr) {
    createInterface({ input: proc.stderr }).on('line', (line) => {
      onLine?.(line)
      lines.push(line)
      if (lines.length > 50) lines.shift()
    })
  }
  const exited = new Promise<void>((done) => proc.once('exit', () => done()))
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    tail: () => lines.join('\n'),
    async stop(graceMs = 10_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
        await exited
        clearTimeout(timer)
      }
      live.delete(child)
    },
  }
  live.add(child)
  return child
}

export interface BackendChild extends Child {
  url: string
}

/** fixtures/backends/test-backend.mjs over Streamable HTTP on a random loopback port. */
export function startHttpBackend(name: string, tools = 0): Promise<BackendChild> {
  return startBackendScript(name, [
    TEST_BACKEND,
    '--transport',
    'http',
    '--name',
    name,
    '--tools',
    String(tools),
  ])
}

/** fixtures/backends/modern-http.mjs: MCP 2026-07-28 (v2 SDK createMcpHandler) on a random port. */
export function startModernBackend(name: string, args: string[] = []): Promise<BackendChild> {
  return startBackendScript(name, [MODERN_BACKEND, '--name', name, ...args])
}

/** The bare relay (bench/bare-relay.ts) in front of `backendUrl`. */
export function startBareRelay(backendUrl: string): Promise<BackendChild> {
  return startBackendScript('bare-relay', [resolve(ROOT, 'dist/bench/bare-relay.js'), backendUrl])
}

async function startBackendScript(name: string, args: string[]): Promise<BackendChild> {
  const proc = spawn(process.execPath, [...NODE_FLAGS, ...args, '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const child = track(`backend ${name}`, proc)
  const url = await new Promise<string>((ok, fail) => {
    const rl = createInterface({ input: proc.stdout! })
    const timer = setTimeout(() => {
      fail(new Error(`backend ${name}: no URL after 15 s\n${child.tail()}`))
    }, 15_000)
    rl.once('line', (line) => {
      clearTimeout(timer)
      try {
        ok((JSON.parse(line) as { url: string }).url)
      } catch {
        fail(new Error(`backend ${name}: unexpected stdout line ${line}`))
      }
    })
    proc.once('exit', (code) => {
      fail(new Error(`backend ${name} exited (${code})\n${child.tail()}`))
    })
  })
  return { ...child, url }
}

/** A free TCP port on 127.0.0.1 (released immediately; the race is harmless on a quiet host). */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((ok, fail) => srv.once('error', fail).listen(0, '127.0.0.1', ok))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((ok) => srv.close(() => ok()))
  return port
}

export interface VmcpChild extends Child {
  /** `http://127.0.0.1:PORT` */
  base: string
  /** `${base}/mcp` */
  url: string
  /** Lines the child printed that start with `{"bench":` (from bench/gc-hook). */
  readonly benchLines: string[]
}

export interface StartVmcpOptions {
  name: string
  configPath: string
  /** Extra node flags, before the script (`--cpu-prof`, `--expose-gc`, `--import`...). */
  nodeArgs?: string[]
  logLevel?: string
  /** How long to wait for /readyz (backend discovery included). */
  readyTimeoutMs?: number
  /** Listen port; default a free one. Mode B needs it up front: its issuer names the port. */
  port?: number
}

/**
 * `node dist/src/cli/main.js serve` on a free port. Readiness is polled on /readyz: at
 * `--log-level warn` the `ready` log line is never written, and we want warn to keep the
 * per-request access log (info) out of the measurement.
 */
export async function startVmcp(options: StartVmcpOptions): Promise<VmcpChild> {
  const port = options.port ?? (await freePort())
  const proc = spawn(
    process.execPath,
    [
      ...NODE_FLAGS,
      ...(options.nodeArgs ?? []),
      VMCP_CLI,
      'serve',
      '--config',
      options.configPath,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      options.logLevel ?? 'warn',
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const benchLines: string[] = []
  const child = track(`vmcp ${options.name}`, proc, (line) => {
    if (line.startsWith('{"bench":')) benchLines.push(line)
  })
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000)
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`vmcp ${options.name} exited (${proc.exitCode})\n${child.tail()}`)
    }
    try {
      const res = await fetch(`${base}/readyz`)
      await res.body?.cancel()
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await child.stop()
      throw new Error(`vmcp ${options.name} not ready in time\n${child.tail()}`)
    }
    await sleep(100)
  }
  return { ...child, base, url: `${base}/mcp`, benchLines }
}

/** VmRSS of a live process, in bytes (Linux /proc). */
export function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!match) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1]) * 1024
}

/** User + system CPU time a live process has used so far, in ms (Linux /proc, USER_HZ = 100). */
export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may contain spaces) in parentheses: state is the first,
  // utime and stime are the 12th and 13th (stat(5) fields 14 and 15), in clock ticks.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}

/** The host's CPU time so far, in clock ticks (Linux /proc/stat, the aggregate `cpu` line). */
export function readHostTicks(): { total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  // proc(5): user nice system idle iowait irq softirq steal guest guest_nice; guest time is
  // already counted in user and nice.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7] ?? 0 }
}

/**
 * The share of the host's CPU time the hypervisor gave to other guests between two readings
 * (steal): a run taken while neighbours took CPU reads slow on every row.
 */
export function stealShare(from: { total: number; steal: number }, to = readHostTicks()): number {
  const total = to.total - from.total
  return total > 0 ? (to.steal - from.steal) / total : 0
}
