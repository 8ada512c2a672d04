import { randomBytes } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'

/**
 * A local JSON file of entries (`{ "version": 1, "entries": { … } }`), for state that must
 * outlive the process without Redis (DCR credentials, registry sign-ins). Writes go to a
 * temporary file (0600) renamed into place, one at a time within the process, so a crash never
 * leaves half a file and read-modify-write never interleaves. It does not lock across processes.
 */
export interface EntriesFile<V> {
  /** The entries; `{}` when the file is absent or corrupt (after `onCorrupt`). */
  read(): Promise<Record<string, V>>
  /** Reads, applies `change`, writes the result; queued behind earlier updates. */
  update(change: (entries: Record<string, V>) => void): Promise<void>
  /** Resolves when every queued update has finished. */
  settled(): Promise<void>
}

export interface EntriesFileOptions {
  /** The file exists but is not an entries file: it is treated as empty and replaced on write. */
  onCorrupt(): void
  /** Called after each successful write. */
  onWritten?(): void
  /** Maps a read failure other than ENOENT (default: rethrown as is). */
  readError?(err: NodeJS.ErrnoException): Error
}

export function createEntriesFile<V>(file: string, options: EntriesFileOptions): EntriesFile<V> {
  let queue: Promise<unknown> = Promise.resolve()

  async function read(): Promise<Record<string, V>> {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw options.readError ? options.readError(err) : err
    })
    if (text === undefined) return {}
    try {
      const parsed = JSON.parse(text) as { version?: unknown; entries?: unknown }
      if (parsed.version === 1 && typeof parsed.entries === 'object' && parsed.entries !== null) {
        return parsed.entries as Record<string, V>
      }
    } catch {
      // not JSON: corrupt, below
    }
    options.onCorrupt()
    return {}
  }

  async function write(entries: Record<string, V>): Promise<void> {
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, `${JSON.stringify({ version: 1, entries }, null, 2)}\n`, { mode: 0o600 })
    await rename(tmp, file)
    options.onWritten?.()
  }

  return {
    read,
    update(change) {
      const fn = async () => {
        const entries = await read()
        change(entries)
        await write(entries)
      }
      const run = queue.then(fn, fn)
      queue = run.catch(() => undefined)
      return run
    },
    async settled() {
      await queue
    },
  }
}
