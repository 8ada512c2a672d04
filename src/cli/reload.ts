import { createHash } from 'node:crypto'
import { readFileSync, watch } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { ConfigError, type VmcpConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'

// Editors save in bursts (truncate + write, or write a temp file + rename): one reload per burst.
const DEBOUNCE_MS = 250

export interface ConfigReloaderOptions {
  /** Reads and validates the file, with the command line's overrides applied; throws ConfigError. */
  load(): VmcpConfig
  /** Applies a validated configuration (Vmcp.reload). */
  apply(config: VmcpConfig): Promise<unknown>
  logger: Logger
}

/**
 * Re-reads the configuration file and applies it, one reload at a time. An invalid file changes
 * nothing: every error is logged, one line each, and the running configuration stays.
 */
export function createConfigReloader(options: ConfigReloaderOptions): (trigger: string) => Promise<void> {
  const { logger } = options
  let queue: Promise<void> = Promise.resolve()
  const once = async (trigger: string) => {
    let next: VmcpConfig
    try {
      next = options.load()
    } catch (err) {
      const lines = err instanceof ConfigError ? err.issues.map((i) => `${i.path || '(root)'}: ${i.message}`) : [(err as Error).message]
      for (const line of lines) logger.error({ trigger }, `new configuration rejected: ${line}`)
      logger.error({ trigger }, 'the running configuration stays')
      return
    }
    logger.info({ trigger }, 'reloading configuration')
    await options.apply(next)
  }
  return (trigger) => {
    queue = queue.then(() => once(trigger)).catch((err: unknown) => {
      logger.error({ trigger, err: (err as Error).message }, 'reload failed')
    })
    return queue
  }
}

/**
 * Calls `onChange` when the file's content changes. The directory is watched, not the file, so
 * editors that save by writing a new file and renaming it over the old one (vim, many IDEs, a
 * Kubernetes ConfigMap's symlink swap) are seen too; events for other files cost one read and a
 * hash, and an unchanged content is ignored.
 */
export function watchConfigFile(path: string, onChange: () => void, logger: Logger): { close(): void } {
  const file = resolve(path)
  let last = digest(file)
  let timer: NodeJS.Timeout | undefined
  const check = () => {
    const now = digest(file)
    // Missing: replaced half-way (or deleted); the write that brings it back triggers again.
    if (now === undefined || now === last) return
    last = now
    onChange()
  }
  const watcher = watch(dirname(file), { persistent: false }, () => {
    clearTimeout(timer)
    timer = setTimeout(check, DEBOUNCE_MS)
  })
  watcher.on('error', (err) => logger.error({ err: err.message }, `cannot watch ${basename(file)} any longer`))
  logger.info({ file }, 'watching the configuration file')
  return {
    close() {
      clearTimeout(timer)
      watcher.close()
    },
  }
}

function digest(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex')
  } catch {
    return undefined
  }
}
