import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

const KEEP_LINES = 20
const SHOWN_LINES = 3
const MAX_LINE = 300

/**
 * The last lines a child process wrote to stderr: when it dies, they are the reason shown in the
 * log and /status (`Cannot find module …`, `EADDRINUSE …`) instead of "Connection closed".
 */
export class OutputTail {
  readonly #lines: string[] = []

  push(chunk: Buffer | string): string[] {
    const lines = chunk
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l.trim() !== '')
    for (const line of lines) {
      this.#lines.push(line.slice(0, MAX_LINE))
      if (this.#lines.length > KEEP_LINES) this.#lines.shift()
    }
    return lines
  }

  /** Forgets what an earlier process wrote (a probe process that is gone). */
  clear(): void {
    this.#lines.length = 0
  }

  /** One line for a log field or /status; undefined when the process wrote nothing. */
  text(): string | undefined {
    if (this.#lines.length === 0) return undefined
    const port = /EADDRINUSE\b.*?:(\d+)\b/.exec(this.#lines.join('\n'))?.[1]
    if (port) return portInUse(Number(port))
    // A runtime's crash dump is long (Node prints the source line, a stack, the error object):
    // its error line says more than its last lines.
    const error = this.#lines.find((l) => /^\s*(\w*Error|\w*Exception)\b.*:/.test(l))
    return error?.trim() ?? this.#lines.slice(-SHOWN_LINES).join(' | ')
  }
}

/** `port 4490 is in use (pid 1234)`: the pid when /proc tells which process listens there. */
export function portInUse(port: number): string {
  const pid = listenerPid(port)
  return `port ${port} is in use${pid ? ` (pid ${pid})` : ''}`
}

/** The pid of the process listening on a local TCP port, from Linux /proc; undefined elsewhere. */
function listenerPid(port: number): number | undefined {
  try {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
    const inodes = new Set<string>()
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
        const cols = row.trim().split(/\s+/)
        // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; column 9 is the socket inode.
        if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A' && cols[9]) inodes.add(`socket:[${cols[9]}]`)
      }
    }
    if (inodes.size === 0) return undefined
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let fds: string[]
      try {
        fds = readdirSync(`/proc/${pid}/fd`)
      } catch {
        continue
      }
      for (const fd of fds) {
        try {
          if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid)
        } catch {
          // The fd closed while we looked.
        }
      }
    }
  } catch {
    // Not Linux, or /proc not readable: the message goes without a pid.
  }
  return undefined
}
