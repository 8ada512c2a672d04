import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log/index.js'
import { createEntriesFile, createSealer, loadOrCreateSealingKey, type Sealer, type Store } from '../storage/index.js'

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

/** What `vmcp serve` last listed from a registry, for `vmcp registry status`. */
export interface RegistryListingSummary {
  /** ISO time of the listing. */
  at: string
  /** Servers the registry listed (before include globs and name checks). */
  servers: number
  /** Backends vmcp made of them. */
  backends: string[]
}

/** Registry sign-ins and listing summaries, sealed at rest (a file under stateDir, or Redis). */
export interface RegistryTokenStore {
  get(key: string): Promise<RegistryTokens | undefined>
  put(key: string, tokens: RegistryTokens): Promise<void>
  delete(key: string): Promise<void>
  getListing(registryUrl: string): Promise<RegistryListingSummary | undefined>
  putListing(registryUrl: string, summary: RegistryListingSummary): Promise<void>
  /** Closes the Redis connection (nothing for the file). */
  close(): Promise<void>
}

/**
 * The store key of one registry sign-in: `REGISTRY_OAUTH_` + the first 8 hex digits of
 * sha256(url + "\0" + issuer), so two registries, or one registry behind two IdPs, never share.
 */
export function registryTokenKey(url: string, issuer: string): string {
  return `REGISTRY_OAUTH_${createHash('sha256').update(`${url}\0${issuer}`).digest('hex').slice(0, 8)}`
}

/** The store key of a registry's last listing summary: `REGISTRY_LISTING_` + 8 hex of sha256(url). */
export function registryListingKey(url: string): string {
  return `REGISTRY_LISTING_${createHash('sha256').update(url).digest('hex').slice(0, 8)}`
}

// A sign-in in Redis outlives any access token; each write (sign-in, refresh) starts it again.
const REDIS_TTL_MS = 400 * 24 * 3600 * 1000
const REDIS_KIND = 'registry'

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
  return sealedEntries(
    {
      read: async (key) => {
        const sealed = (await entriesFile.read())[key]
        return typeof sealed === 'string' ? sealed : undefined
      },
      write: (key, sealed) =>
        entriesFile.update((entries) => {
          entries[key] = sealed
        }),
      remove: (key) =>
        entriesFile.update((entries) => {
          delete entries[key]
        }),
      close: async () => undefined,
    },
    sealer,
    logger,
  )
}

export interface StoreRegistryTokenStoreOptions {
  /** The shared Store (Redis when `authServer.runConfig.storage.type` is redis). */
  store: Store
  /** 32-byte sealing key (storage.encryptionKey). */
  key: Buffer
  logger: Logger
}

/**
 * Registry sign-ins in the shared Store (Redis), under `registry:REGISTRY_OAUTH_…` after the
 * store's key prefix: every replica of vmcp and the CLI see one sign-in. Sealed exactly as in the
 * file (AES-256-GCM, the entry key as associated data); closing the store is this store's job.
 */
export function createStoreRegistryTokenStore(options: StoreRegistryTokenStoreOptions): RegistryTokenStore {
  const { store, logger } = options
  return sealedEntries(
    {
      read: async (key) => {
        const sealed = await store.get<unknown>(REDIS_KIND, key)
        return typeof sealed === 'string' ? sealed : undefined
      },
      write: (key, sealed) => store.put(REDIS_KIND, key, sealed, REDIS_TTL_MS),
      remove: (key) => store.delete(REDIS_KIND, key),
      close: () => store.close(),
    },
    createSealer(options.key),
    logger,
  )
}

/** Where sealed entries live: a file's entries or Store records, by entry key. */
interface EntrySlots {
  read(key: string): Promise<string | undefined>
  write(key: string, sealed: string): Promise<void>
  remove(key: string): Promise<void>
  close(): Promise<void>
}

// Each entry is sealed with its key as associated data, so it cannot be moved to another slot; an
// entry that does not open is treated as absent (sign in again).
function sealedEntries(slots: EntrySlots, sealer: Sealer, logger: Logger): RegistryTokenStore {
  const get = async <T>(key: string): Promise<T | undefined> => {
    const sealed = await slots.read(key)
    if (sealed === undefined) return undefined
    try {
      return JSON.parse(sealer.open(sealed, key)) as T
    } catch {
      logger.warn({ entry: key }, 'registry entry cannot be decrypted (another key, or tampered with); sign in again')
      return undefined
    }
  }
  const put = (key: string, value: unknown) => slots.write(key, sealer.seal(JSON.stringify(value), key))
  return {
    get: (key) => get<RegistryTokens>(key),
    put,
    delete: (key) => slots.remove(key),
    getListing: (url) => get<RegistryListingSummary>(registryListingKey(url)),
    putListing: (url, summary) => put(registryListingKey(url), summary),
    close: () => slots.close(),
  }
}
