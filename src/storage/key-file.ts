import { randomBytes } from 'node:crypto'
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises'

/**
 * A 32-byte sealing key kept in `path` (base64url): read when present, otherwise generated once
 * (0600) and hard-linked into place, so concurrent starts agree on one key. `onLoose` is called
 * when the file is readable by group or others. Throws when the file holds anything else.
 */
export async function loadOrCreateSealingKey(path: string, onLoose?: () => void): Promise<Buffer> {
  const read = async () => {
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (text === undefined) return undefined
    const key = Buffer.from(text.trim(), 'base64url')
    if (key.length !== 32) throw new Error(`${path} does not hold a 32-byte key; move it away to generate a new one`)
    return key
  }
  const existing = await read()
  if (existing) return existing
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  await writeFile(tmp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await link(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    await unlink(tmp).catch(() => undefined)
  }
  const key = await read()
  if (!key) throw new Error(`cannot create ${path}`)
  if (((await stat(path)).mode & 0o077) !== 0) onLoose?.()
  return key
}
