import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js'
import { stringify } from 'yaml'
import { parseConfigText, type VmcpConfig } from '../../src/config/index.js'
import { createLogger, type Logger } from '../../src/log/index.js'
import { createVmcp, type Vmcp, type VmcpOptions } from '../../src/server/index.js'

export interface RunningVmcp {
  vmcp: Vmcp
  url: string
  base: string
  config: VmcpConfig
  logs: string[]
  logger: Logger
  close(): Promise<void>
}

/** An in-memory pino destination: every JSON line, for assertions and log canaries. */
export function memoryLogger(level: 'trace' | 'debug' | 'info' = 'debug'): { logger: Logger; logs: string[] } {
  const logs: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      cb()
    },
  })
  return { logger: createLogger({ level, destination: stream }), logs }
}

/**
 * Starts vmcp in-process on 127.0.0.1 with a random port. `config` is YAML text or an object
 * (serialized to YAML, so it goes through exactly the loader users get).
 */
export async function startVmcp(
  config: string | Record<string, unknown>,
  options: {
    env?: Record<string, string>
    level?: 'trace' | 'debug' | 'info'
    baseDir?: string
    /** Embedded AS knobs (registration clock, backoff). */
    authServer?: VmcpOptions['authServer']
    /** false: every call takes the SDK path (the relay tests run over both). */
    relay?: boolean
  } = {},
): Promise<RunningVmcp> {
  const text = typeof config === 'string' ? config : stringify(config)
  const parsed = parseConfigText(text, { baseDir: options.baseDir ?? process.cwd(), env: { ...process.env, ...options.env } })
  parsed.server.host = '127.0.0.1'
  // A test that pins no port gets a free one.
  if (!/\bport:/.test(text)) parsed.server.port = 0
  const { logger, logs } = memoryLogger(options.level)
  const vmcp = createVmcp({
    config: parsed,
    logger,
    ...(options.authServer ? { authServer: options.authServer } : {}),
    ...(options.relay === false ? { relay: false } : {}),
  })
  const { listenUrl: url } = await vmcp.start()
  return {
    vmcp,
    url,
    base: new URL(url).origin,
    config: parsed,
    logs,
    logger,
    close: () => vmcp.close(),
  }
}

export interface ConnectOptions {
  token?: string
  capabilities?: ClientCapabilities
  name?: string
}

/** A real SDK client connected to vmcp over Streamable HTTP. */
export async function connectClient(url: string, options: ConnectOptions = {}): Promise<Client> {
  const client = new Client(
    { name: options.name ?? 'test-client', version: '1.0.0' },
    { capabilities: options.capabilities ?? {} },
  )
  const headers: Record<string, string> = {}
  if (options.token) headers.authorization = `Bearer ${options.token}`
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }))
  return client
}

/** Calls a tool and returns its first text content. */
export async function callText(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const res = await client.callTool({ name, arguments: args })
  const first = (res.content as Array<{ type: string; text?: string }>)[0]
  return first?.text ?? ''
}

/**
 * A raw Streamable HTTP session (initialize, then initialized), for tests that pick their own
 * JSON-RPC ids or send malformed messages. Returns the headers of every later POST.
 */
export async function openRawSession(url: string): Promise<Record<string, string>> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  }
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  })
  await init.text()
  headers['mcp-session-id'] = init.headers.get('mcp-session-id') ?? ''
  headers['mcp-protocol-version'] = '2025-06-18'
  const ack = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  })
  await ack.text()
  return headers
}

// The CLI as users run it: the built file, from the repository root.
export const VMCP_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const VMCP_CLI = `${VMCP_ROOT}dist/src/cli/main.js`
// Generous: a loaded 2-core machine can take many seconds to start node and discover a backend.
export const PROCESS_WAIT_MS = 90_000

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** A `vmcp serve` child process whose stderr JSON lines can be awaited. */
export interface VmcpProcess {
  child: ChildProcess
  lines: LogLine[]
  /**
   * The first line with this `msg` (or matching the predicate) at index `from` or later of
   * `lines`; rejects when vmcp exits first or after PROCESS_WAIT_MS.
   */
  waitFor(match: string | ((line: LogLine) => boolean), from?: number): Promise<LogLine>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the exit, or rejects after PROCESS_WAIT_MS. */
  exitWithin(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL unless it has exited; resolves once it is gone. */
  kill(): Promise<void>
}

/** Starts `vmcp serve <args>` as a real process (build first: `npm test` does). */
export function spawnVmcp(args: string[], env: NodeJS.ProcessEnv = process.env): VmcpProcess {
  const child = spawn(process.execPath, [VMCP_CLI, 'serve', ...args], {
    cwd: VMCP_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: LogLine[] = []
  const raw: string[] = []
  const waiters = new Set<{ test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>()
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (text) => {
    raw.push(text)
    let line: LogLine
    try {
      line = JSON.parse(text) as LogLine
    } catch {
      return
    }
    lines.push(line)
    for (const w of waiters) {
      if (!w.test(line)) continue
      waiters.delete(w)
      w.resolve(line)
    }
  })
  // 'close', not 'exit': 'exit' can fire before the last lines written to stderr were read.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  )
  const bounded = <T>(what: string, work: (done: (v: T) => void) => void) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} within ${PROCESS_WAIT_MS} ms:\n${raw.join('\n')}`)), PROCESS_WAIT_MS)
      timer.unref()
      work((v) => {
        clearTimeout(timer)
        resolve(v)
      })
    })
  return {
    child,
    lines,
    exited,
    waitFor(match, from = 0) {
      const test = typeof match === 'string' ? (l: LogLine) => l.msg === match : match
      const seen = lines.slice(from).find(test)
      if (seen) return Promise.resolve(seen)
      const what = typeof match === 'string' ? `"${match}"` : 'the awaited line'
      return Promise.race([
        bounded<LogLine>(`no ${what} log line`, (done) => waiters.add({ test, resolve: done })),
        exited.then(({ code }) => {
          throw new Error(`vmcp exited (${code}) before ${what}:\n${raw.join('\n')}`)
        }),
      ])
    },
    exitWithin: () => bounded('vmcp did not exit', (done) => void exited.then(done)),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
