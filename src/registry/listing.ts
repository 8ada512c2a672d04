import type { HttpBackendConfig, RegistryConfig } from '../config/index.js'
import { checkSecureUrl, readLimitedText, type FetchLike } from '../net/index.js'
import { RegistryAuthRequiredError, type RegistryTokenSource } from './token-source.js'

/** One server of a registry listing, as much of it as vmcp uses. */
export interface RegistryServer {
  name: string
  remotes: Array<{ type: string; url: string }>
}

export type RegistryFailure = 'auth_required' | 'forbidden' | 'unreachable' | 'invalid'

/** A listing that could not be had; `message` is the operator's sentence (no token in it). */
export class RegistryListError extends Error {
  override readonly name = 'RegistryListError'
  readonly kind: RegistryFailure
  constructor(kind: RegistryFailure, message: string) {
    super(message)
    this.kind = kind
  }
}

export interface ListRegistryOptions {
  registry: RegistryConfig
  fetch: FetchLike
  /** Absent when the registry has no `auth`. */
  tokens?: RegistryTokenSource
  /** Upper bound on pages followed (default 50) and on each page's size (default 4 MiB). */
  maxPages?: number
  maxPageBytes?: number
}

const PAGE_LIMIT = 100

/**
 * Every server of `GET {url}/v0.1/servers`, following `metadata.nextCursor`. A 401 on a token
 * believed valid is retried once after a refresh (RFC 6750 §3.1 invalid_token: the IdP may have
 * revoked it early); a second 401 means sign in again. A 403 means signed in but not allowed.
 */
export async function listRegistryServers(options: ListRegistryOptions): Promise<RegistryServer[]> {
  const { registry, tokens } = options
  const base = `${registry.url.replace(/\/+$/, '')}/v0.1/servers`
  const out: RegistryServer[] = []
  let cursor: string | undefined
  for (let page = 0; page < (options.maxPages ?? 50); page++) {
    const url = new URL(base)
    url.searchParams.set('limit', String(PAGE_LIMIT))
    if (cursor) url.searchParams.set('cursor', cursor)
    const body = await getPage(url, options)
    const { servers, next } = parsePage(body, registry.name)
    out.push(...servers)
    if (!next) return out
    cursor = next
  }
  throw new RegistryListError('invalid', `registry "${registry.name}": more than ${options.maxPages ?? 50} pages; listing abandoned`)

  async function getPage(url: URL, o: ListRegistryOptions): Promise<unknown> {
    let retried = false
    for (;;) {
      const headers: Record<string, string> = { accept: 'application/json' }
      if (tokens) {
        try {
          headers.authorization = `Bearer ${retried ? await tokens.refresh() : await tokens.token()}`
        } catch (err) {
          if (err instanceof RegistryAuthRequiredError) throw new RegistryListError('auth_required', err.message)
          throw new RegistryListError('unreachable', `registry "${registry.name}": identity provider unreachable: ${(err as Error).message}`)
        }
      }
      let res: Response
      try {
        res = await o.fetch(url, { headers, signal: AbortSignal.timeout(15_000) })
      } catch (err) {
        throw new RegistryListError('unreachable', `registry "${registry.name}" is unreachable: ${(err as Error).message}`)
      }
      if (res.status === 401 && tokens && !retried) {
        await res.body?.cancel()
        retried = true
        continue
      }
      if (res.status === 401) {
        await res.body?.cancel()
        throw new RegistryListError(
          'auth_required',
          `registry "${registry.name}": authentication required: run 'vmcp registry login --registry ${registry.name}'`,
        )
      }
      if (res.status === 403) {
        await res.body?.cancel()
        throw new RegistryListError('forbidden', `registry "${registry.name}": signed in but not allowed to list servers (HTTP 403)`)
      }
      if (!res.ok) {
        await res.body?.cancel()
        throw new RegistryListError('unreachable', `registry "${registry.name}" answered HTTP ${res.status}`)
      }
      try {
        return JSON.parse(await readLimitedText(res, o.maxPageBytes ?? 4 * 1024 * 1024)) as unknown
      } catch (err) {
        throw new RegistryListError('invalid', `registry "${registry.name}" sent an unreadable listing: ${(err as Error).message}`)
      }
    }
  }
}

function parsePage(body: unknown, registry: string): { servers: RegistryServer[]; next: string | undefined } {
  const b = body as { servers?: unknown; metadata?: { nextCursor?: unknown } } | null
  if (!b || !Array.isArray(b.servers)) throw new RegistryListError('invalid', `registry "${registry}" sent a listing without servers[]`)
  const servers: RegistryServer[] = []
  for (const item of b.servers as unknown[]) {
    // v0.1 wraps each server: { server: {...}, _meta: {...} }.
    const s = ((item as { server?: unknown })?.server ?? item) as { name?: unknown; remotes?: unknown }
    const latest = (item as { _meta?: Record<string, { isLatest?: unknown }> })?._meta?.['io.modelcontextprotocol.registry/official']?.isLatest
    if (typeof s?.name !== 'string' || latest === false) continue
    const remotes = Array.isArray(s.remotes)
      ? (s.remotes as Array<{ type?: unknown; url?: unknown }>).flatMap((r) =>
          typeof r?.type === 'string' && typeof r.url === 'string' ? [{ type: r.type, url: r.url }] : [],
        )
      : []
    servers.push({ name: s.name, remotes })
  }
  const next = b.metadata?.nextCursor
  return { servers, next: typeof next === 'string' && next !== '' ? next : undefined }
}

/** `*` matches within one name segment, `**` across segments; everything else is literal. */
export function matchesGlob(name: string, glob: string): boolean {
  const re = glob
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'))
    .join('.*')
  return new RegExp(`^${re}$`).test(name)
}

const BACKEND_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

export interface RegistryBackends {
  backends: HttpBackendConfig[]
  /** Servers that were listed but not turned into backends, and why. */
  skipped: Array<{ server: string; reason: string }>
}

/**
 * Backends from a listing: servers matching `include` with a streamable-http (preferred) or sse
 * remote, named after the last segment of their registry name (`io.corp/jira` → `jira`), made
 * valid and unique. A name taken by a configured backend is skipped, never renamed: the operator's
 * backend keeps its name and the registry's is reported.
 */
export function buildRegistryBackends(registry: RegistryConfig, servers: RegistryServer[], configured: ReadonlySet<string>): RegistryBackends {
  const backends: HttpBackendConfig[] = []
  const skipped: RegistryBackends['skipped'] = []
  const taken = new Set<string>()
  const seen = new Set<string>()
  for (const s of servers) {
    if (seen.has(s.name)) continue
    seen.add(s.name)
    if (registry.include.length > 0 && !registry.include.some((g) => matchesGlob(s.name, g))) continue
    const remote = s.remotes.find((r) => r.type === 'streamable-http') ?? s.remotes.find((r) => r.type === 'sse')
    if (!remote) {
      skipped.push({ server: s.name, reason: 'no streamable-http or sse remote' })
      continue
    }
    const why = checkSecureUrl(remote.url)
    if (why) {
      skipped.push({ server: s.name, reason: `remote url ${why}` })
      continue
    }
    let base = (s.name.split('/').pop() ?? '').replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 56)
    if (!base) base = 'server'
    if (configured.has(base)) {
      skipped.push({ server: s.name, reason: `name "${base}" is taken by a configured backend` })
      continue
    }
    let name = base
    for (let i = 2; taken.has(name) || configured.has(name); i++) name = `${base}-${i}`
    if (!BACKEND_NAME.test(name)) {
      skipped.push({ server: s.name, reason: `no valid backend name from "${s.name}"` })
      continue
    }
    taken.add(name)
    backends.push({ name, transport: remote.type as 'streamable-http' | 'sse', url: remote.url, headers: {} })
  }
  return { backends, skipped }
}
