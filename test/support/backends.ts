import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const FIXTURES = fileURLToPath(new URL('../../fixtures/backends/', import.meta.url))
export const TEST_BACKEND = `${FIXTURES}test-backend.mjs`

export interface RunningBackend {
  url: string
  port: number
  child: ChildProcess
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<void>
  close(): Promise<void>
}

/**
 * Starts an HTTP fixture backend as a child process and waits for its `{"url": …}` line.
 * `port` pins the port (for restart tests); default is a free one.
 */
export async function startHttpBackend(
  script: string,
  args: string[] = [],
  port = 0,
): Promise<RunningBackend> {
  const child = spawn(process.execPath, [script, '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stderr: string[] = []
  child.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const url = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`backend exited (${code}) before listening: ${stderr.join('')}`))
    child.once('exit', onExit)
    lines.once('line', (line) => {
      child.off('exit', onExit)
      try {
        resolve((JSON.parse(line) as { url: string }).url)
      } catch {
        reject(new Error(`unexpected backend output: ${line}`))
      }
    })
  })
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  return {
    url,
    port: Number(new URL(url).port),
    child,
    async kill() {
      child.kill('SIGKILL')
      await exited
    },
    async close() {
      child.kill('SIGTERM')
      await exited
    },
  }
}

export function startTestBackend(args: string[] = [], port = 0): Promise<RunningBackend> {
  return startHttpBackend(TEST_BACKEND, ['--transport', 'http', ...args], port)
}
