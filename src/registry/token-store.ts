import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log/index.js'
import { createEntriesFile, createSealer, loadOrCreateSealingKey } from '../storage/index.js'

/** What a sign-in leaves behind. Sealed as a whole at rest: nothing of it is readable in clear. */
export interface RegistryTokens {
  accessToken: string
  /** Epoch ms after which the access token is not used. */
  expiresAt: number
  refreshToken?: string
  /** Who signed in (ID token `preferred_username`, `email` or `sub`), for `status`. */
  signedInAs?: string
  /** Epoch ms of the sign-in or last refresh. */
  updatedAt: number
}

export interface RegistryTokenStore {
  get(key: string): Promise<RegistryTokens | undefined>
  put(key: string, tokens: RegistryTokens): Promise<void>
  delete(key: string): Promise<void>
}

/**
 * The store key of one registry sign-in: `REGISTRY_OAUTH_` + the first 8 hex digits of
 * sha256(url + "\0" + issuer), so two registries, or one registry behind two IdPs, never share.
 */
export function registryTokenKey(url: string, issuer: string): string {
  return `REGISTRY_OAUTH_${createHash('sha256').update(`${url}\0${issuer}`).digest('hex').slice(0, 8)}`
}

export const REGISTRY_TOKENS_FILE = 'registry-tokens.json'
export const REGISTRY_KEY_FILE = 'registry-tokens.key'

export interface FileRegistryTokenStoreOptions {
  stateDir: string
  /** 32-byte sealing key (storage.encryptionKey); absent: one is generated once under stateDir. */
  key?: Buffer
  logger: Logger
}

/**
 * One JSON file under stateDir (0600, written to a temporary file and renamed into place); each
 * entry is AES-256-GCM sealed with its key as associated data, so an entry cannot be moved to
 * another registry's slot. An entry that does not open is treated as absent (sign in again).
 */
export async function createFileRegistryTokenStore(
  options: FileRegistryTokenStoreOptions,
): Promise<RegistryTokenStore> {
  const { stateDir, logger } = options
  const file = join(stateDir, REGISTRY_TOKENS_FILE)
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const keyFile = join(stateDir, REGISTRY_KEY_FILE)
  const sealer = createSealer(
    options.key ??
      (await loadOrCreateSealingKey(keyFile, () =>
        logger.warn({ file: keyFile }, 'registry token key file is readable by others; chmod 600 it'),
      )),
  )
  const entriesFile = createEntriesFile<string>(file, {
    onCorrupt: () => logger.warn({ file }, 'registry token file is corrupt; ignoring it (sign in again)'),
  })
  const readAll = () => entriesFile.read()
  const update = (fn: (entries: Record<string, string>) => void) => entriesFile.update(fn)
  return {
    async get(key) {
      const sealed = (await readAll())[key]
      if (typeof sealed !== 'string') return undefined
      try {
        return JSON.parse(sealer.open(sealed, key)) as RegistryTokens
      } catch {
        logger.warn({ entry: key }, 'registry sign-in cannot be decrypted (another key, or tampered with); sign in again')
        return undefined
      }
    },
    put: (key, tokens) =>
      update((entries) => {
        entries[key] = sealer.seal(JSON.stringify(tokens), key)
      }),
    delete: (key) =>
      update((entries) => {
        delete entries[key]
      }),
  }
}
