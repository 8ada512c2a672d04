import { spawn, type ChildProcess } from 'node:child_process'
import type { Logger, Secret } from '../log/index.js'
import { childEnvironment } from './child-env.js'

export interface LaunchConfig {
  command: string
  args: string[]
  env: Record<string, Secret>
  cwd: string
}

const STOP_GRACE_MS = 5000

/**
 * A local process that serves an HTTP backend (`launch:` in the config). vmcp starts it, logs
 * its output at debug, reports when it exits, and stops it on shutdown.
 */
export class Launcher {
  #child: ChildProcess | undefined
  readonly #config: LaunchConfig
  readonly #backend: string
  readonly #logger: Logger
  readonly #onExit: (code: number | null) => void

  constructor(config: LaunchConfig, backend: string, logger: Logger, onExit: (code: number | null) => void) {
    this.#config = config
    this.#backend = backend
    this.#logger = logger
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
    const log = (stream: string) => (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) this.#logger.debug({ backend: this.#backend, [stream]: line.slice(0, 2000) }, 'launched backend output')
      }
    }
    child.stdout?.on('data', log('stdout'))
    child.stderr?.on('data', log('stderr'))
    child.once('error', (err) => {
      this.#logger.warn({ backend: this.#backend, err: err.message }, 'launch failed')
    })
    child.once('exit', (code) => {
      if (this.#child !== child) return
      this.#child = undefined
      this.#onExit(code)
    })
    this.#logger.info({ backend: this.#backend, pid: child.pid, command }, 'launched backend process')
  }

  async stop(): Promise<void> {
    const child = this.#child
    if (!child) return
    this.#child = undefined
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    force.unref()
    await exited
    clearTimeout(force)
  }
}
