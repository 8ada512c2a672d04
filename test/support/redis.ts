// Private redis-server per test: spawned as a child process of the test runner (never daemonized),
// on a free loopback port, no persistence, killed on close().
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort } from './http.js'

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** pid of the current redis-server child (changes on restart). */
  readonly pid: number | undefined
  /**
   * Stops the server and starts a new one on the same port. Data is lost unless `keepData` is true
   * (then the old server is asked to `SHUTDOWN SAVE` and the new one loads the dump).
   */
  restart(options?: { keepData?: boolean }): Promise<void>
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  close(): Promise<void>
}

export interface StartRedisOptions {
  /** Binary to run (default: `REDIS_SERVER` env or `redis-server` on PATH). */
  bin?: string
  /** Extra command-line arguments, e.g. `['--requirepass', 'secret']`. */
  args?: string[]
  /** Max PING attempts while waiting for readiness (default 200, ~25 ms apart: ~5 s). */
  readyTries?: number
}

/** Sends one inline command over a raw socket and resolves with the first reply line. */
export function redisCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let buf = ''
    const done = (err: Error | null, line?: string) => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      if (err) reject(err)
      else resolve(line ?? '')
    }
    socket.setTimeout(timeoutMs, () => done(new Error(`redis ${command}: timeout`)))
    socket.once('error', (err) => done(err))
    socket.once('close', () => done(null, buf.split('\r\n')[0]))
    socket.once('connect', () => socket.write(`${command}\r\n`))
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8')
      const eol = buf.indexOf('\r\n')
      if (eol >= 0) done(null, buf.slice(0, eol))
    })
  })
}

interface ChildLog {
  text: string
  ready: boolean
}

async function waitForPong(port: number, child: ChildProcess, tries: number, log: ChildLog) {
  let lastError = ''
  for (let i = 0; i < tries; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.exitCode ?? child.signalCode
      throw new Error(`redis-server exited early (${how}):\n${log.text}`)
    }
    try {
      const reply = await redisCommand(port, 'PING', 500)
      // Also require our child's own readiness log line: a PONG alone could come from a foreign
      // process that grabbed the port first (our child would then exit with EADDRINUSE).
      if (reply === '+PONG' && log.ready) return
      lastError = reply // e.g. -LOADING while a dump is being read
    } catch (err) {
      lastError = (err as Error).message
    }
    await delay(25) // polling interval between bounded attempts, not a fixed wait
  }
  throw new Error(
    `redis-server on ${port} not ready after ${tries} tries (${lastError}):\n${log.text}`,
  )
}

function waitForExit(child: ChildProcess, killAfterMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** Starts a private redis-server on a free 127.0.0.1 port and waits until it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = options.bin ?? process.env.REDIS_SERVER ?? 'redis-server'
  const tries = options.readyTries ?? 200
  const dir = await mkdtemp(join(tmpdir(), 'vmcp-redis-'))
  let child: ChildProcess | undefined
  let closed = false

  const killOnExit = () => {
    child?.kill('SIGKILL')
  }
  process.once('exit', killOnExit)

  const spawnOn = async (port: number) => {
    const args = [
      ['--port', String(port)],
      ['--bind', '127.0.0.1'],
      ['--save', ''],
      ['--appendonly', 'no'],
      ['--daemonize', 'no'],
      ['--dir', dir],
      ['--dbfilename', 'dump.rdb'],
      options.args ?? [],
    ].flat()
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const log: ChildLog = { text: '', ready: false }
    const collect = (chunk: Buffer) => {
      log.text = (log.text + chunk.toString('utf8')).slice(-4000)
      if (log.text.includes('Ready to accept connections')) log.ready = true
    }
    proc.stdout?.on('data', collect)
    proc.stderr?.on('data', collect)
    const spawnError = new Promise<never>((_, reject) => proc.once('error', reject))
    spawnError.catch(() => {})
    child = proc
    await Promise.race([waitForPong(port, proc, tries, log), spawnError])
  }

  // A free port can be taken between freePort() and redis binding it: retry with a new one.
  let port = 0
  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      await spawnOn(port)
      break
    } catch (err) {
      if (child) {
        child.kill('SIGKILL')
        await waitForExit(child, 0)
      }
      if (attempt >= 2 || !/address already in use/i.test((err as Error).message)) {
        process.removeListener('exit', killOnExit)
        await rm(dir, { recursive: true, force: true })
        throw err
      }
    }
  }

  const stop = async (keepData: boolean) => {
    const proc = child
    if (!proc) return
    child = undefined
    if (keepData && proc.exitCode === null) {
      const exited = waitForExit(proc, 5000)
      // The connection is closed by the server while shutting down; no reply is expected.
      await redisCommand(port, 'SHUTDOWN SAVE', 5000).catch(() => '')
      await exited
      return
    }
    const exited = waitForExit(proc, 5000)
    proc.kill('SIGTERM')
    await exited
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid
    },
    async restart(opts = {}) {
      if (closed) throw new Error('redis server is closed')
      await stop(opts.keepData ?? false)
      if (!opts.keepData) await rm(join(dir, 'dump.rdb'), { force: true })
      await spawnOn(port)
    },
    async close() {
      if (closed) return
      closed = true
      await stop(false)
      process.removeListener('exit', killOnExit)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
