import { spawn, type ChildProcess } from 'node:child_process'
import { trackChild } from './children.js'
import type { Logger, Secret } from '../log/index.js'
import { childEnvironment } from './child-env.js'
import { OutputTail } from './output-tail.js'

export interface LaunchConfig {
  command: string
  args: string[]
  env: Record<string, Secret>
  cwd: string
}

/**
 * A local process that serves an HTTP backend (`launch:` in the config). vmcp starts it, logs
 * its output at debug, reports when it exits (with the last lines of its stderr, or the spawn
 * error), and stops it on shutdown.
 */
export class Launcher {
  #child: ChildProcess | undefined
  /** Why the last process ended: a spawn error, or its exit code and last stderr lines. */
  failure: string | undefined
  readonly #config: LaunchConfig
  readonly #backend: string
  readonly #logger: Logger
  readonly #stopGraceMs: number
  readonly #onExit: (reason: string) => void

  constructor(
    config: LaunchConfig,
    backend: string,
    logger: Logger,
    stopGraceMs: number,
    onExit: (reason: string) => void,
  ) {
    this.#config = config
    this.#backend = backend
    this.#logger = logger
    this.#stopGraceMs = stopGraceMs
    this.#onExit = onExit
  }

  get running(): boolean {
    return this.#child !== undefined
  }

  ensure(): void {
    if (this.#child) return
    const { command, args, env, cwd } = this.#config
    const child = spawn(command, args, { cwd, env: childEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    this.failure = undefined
    if (child.pid !== undefined) {
      const forget = trackChild(child.pid)
      child.once('exit', forget)
    }
    const tail = new OutputTail()
    const log = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const lines = stream === 'stderr' ? tail.push(chunk) : chunk.toString('utf8').split('\n')
      for (const line of lines) {
        if (line.trim()) this.#logger.debug({ backend: this.#backend, [stream]: line.slice(0, 2000) }, 'launched backend output')
      }
    }
    child.stdout?.on('data', log('stdout'))
    child.stderr?.on('data', log('stderr'))
    const ended = (reason: string) => {
      if (this.#child !== child) return
      this.#child = undefined
      this.failure = reason
      this.#onExit(reason)
    }
    // A command that cannot be spawned (ENOENT, EACCES) emits only 'error': report it at once.
    child.once('error', (err) => ended(`launch failed: ${err.message}`))
    // 'close' comes after the output streams ended, so the stderr tail is complete.
    child.once('close', (code, signal) => {
      const how = code === null ? `killed by ${signal ?? 'a signal'}` : `exited (${code})`
      const said = tail.text()
      ended(`launched process ${how}${said ? `: ${said}` : ''}`)
    })
    if (child.pid !== undefined) {
      this.#logger.info({ backend: this.#backend, pid: child.pid, command }, 'launched backend process')
    }
  }

  async stop(): Promise<void> {
    const child = this.#child
    if (!child) return
    this.#child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const force = setTimeout(() => child.kill('SIGKILL'), this.#stopGraceMs)
    force.unref()
    await exited
    clearTimeout(force)
  }
}
