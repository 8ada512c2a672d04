import type {
  Implementation,
  Prompt,
  Resource,
  ResourceTemplate,
  ServerCapabilities,
  Tool,
} from '@modelcontextprotocol/sdk/types.js'
import type { BackendClient } from './modern/backend-link.js'

/** Everything one backend offers, as it names it. */
export interface Catalog {
  tools: Tool[]
  resources: Resource[]
  resourceTemplates: ResourceTemplate[]
  prompts: Prompt[]
  capabilities: ServerCapabilities
  serverInfo: Implementation | undefined
}

export type ListKind = 'tools' | 'resources' | 'resourceTemplates' | 'prompts'

// A broken backend could hand out cursors forever; stop well past any sane catalog size.
const MAX_PAGES = 200

interface ListOptions {
  signal?: AbortSignal
  timeout: number
}

/** Lists one kind completely, following `nextCursor` (MCP pagination). */
export async function listAll(client: BackendClient, kind: ListKind, options: ListOptions): Promise<unknown[]> {
  const out: unknown[] = []
  let cursor: string | undefined
  for (let page = 0; page < MAX_PAGES; page++) {
    const params = cursor ? { cursor } : {}
    const opts = { signal: options.signal, timeout: options.timeout }
    const res =
      kind === 'tools'
        ? await client.listTools(params, opts)
        : kind === 'resources'
          ? await client.listResources(params, opts)
          : kind === 'resourceTemplates'
            ? await client.listResourceTemplates(params, opts)
            : await client.listPrompts(params, opts)
    const r = res as Record<string, unknown>
    const items = r[kind]
    if (Array.isArray(items)) out.push(...(items as unknown[]))
    cursor = res.nextCursor
    if (!cursor) return out
  }
  throw new Error(`${kind} pagination did not end after ${MAX_PAGES} pages`)
}

/** Which kinds a backend can list, from its declared capabilities. */
export function listableKinds(capabilities: ServerCapabilities): ListKind[] {
  const kinds: ListKind[] = []
  if (capabilities.tools) kinds.push('tools')
  if (capabilities.resources) kinds.push('resources', 'resourceTemplates')
  if (capabilities.prompts) kinds.push('prompts')
  return kinds
}

/** Discovers a connected backend's full catalog; the lists are fetched in parallel. */
export async function discoverCatalog(client: BackendClient, options: ListOptions): Promise<Catalog> {
  const capabilities = client.getServerCapabilities() ?? {}
  const catalog: Catalog = {
    tools: [],
    resources: [],
    resourceTemplates: [],
    prompts: [],
    capabilities,
    serverInfo: client.getServerVersion(),
  }
  await Promise.all(
    listableKinds(capabilities).map(async (kind) => {
      ;(catalog[kind] as unknown[]) = await listAll(client, kind, options)
    }),
  )
  return catalog
}
