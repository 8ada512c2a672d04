import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js'
import type { Prompt, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js'
import type { AggregationConfig, PromptOverrideConfig, ToolOverrideConfig } from '../config/index.js'
import type { Catalog } from './catalog.js'
import { applyPrefix, toValidName } from './naming.js'

/** Where an exposed name really lives. */
export interface Route {
  backend: string
  name: string
}

export interface TemplateRoute {
  backend: string
  uriTemplate: string
  matcher: UriTemplate
}

/** What one client sees, and how each exposed item maps back to its backend. */
export interface AggregatedView {
  tools: Tool[]
  prompts: Prompt[]
  resources: Resource[]
  resourceTemplates: ResourceTemplate[]
  toolRoutes: Map<string, Route>
  promptRoutes: Map<string, Route>
  resourceRoutes: Map<string, string>
  templateRoutes: TemplateRoute[]
}

export interface ViewDiagnostic {
  level: 'warn' | 'error'
  message: string
  backend: string
}

export interface BackendCatalog {
  backend: string
  catalog: Catalog
}

interface Candidate<T> {
  backend: string
  original: string
  /** The name after overrides, before conflict resolution. */
  name: string
  /** An operator-chosen name is final: it is never prefixed. */
  fixed: boolean
  item: T
}

/**
 * Builds the aggregated view from backend catalogs given in config order. Pure: the same input
 * always gives the same names, so exposed names are stable across restarts.
 */
export function buildView(
  catalogs: readonly BackendCatalog[],
  config: AggregationConfig,
): { view: AggregatedView; diagnostics: ViewDiagnostic[] } {
  const diagnostics: ViewDiagnostic[] = []
  const toolConfig = new Map(config.tools.map((t) => [t.backend, t]))
  const promptConfig = new Map(config.prompts.map((p) => [p.backend, p]))

  const toolCandidates: Candidate<Tool>[] = []
  const promptCandidates: Candidate<Prompt>[] = []
  for (const { backend, catalog } of catalogs) {
    toolCandidates.push(...candidates(backend, catalog.tools, toolConfig.get(backend), applyToolOverride))
    promptCandidates.push(...candidates(backend, catalog.prompts, promptConfig.get(backend), applyPromptOverride))
  }

  const tools = resolveNames(toolCandidates, config, 'tool', diagnostics)
  const prompts = resolveNames(promptCandidates, config, 'prompt', diagnostics)

  const view: AggregatedView = {
    tools: [],
    prompts: [],
    resources: [],
    resourceTemplates: [],
    toolRoutes: new Map(),
    promptRoutes: new Map(),
    resourceRoutes: new Map(),
    templateRoutes: [],
  }
  for (const [exposed, c] of tools) {
    view.tools.push({ ...c.item, name: exposed })
    view.toolRoutes.set(exposed, { backend: c.backend, name: c.original })
  }
  for (const [exposed, c] of prompts) {
    view.prompts.push({ ...c.item, name: exposed })
    view.promptRoutes.set(exposed, { backend: c.backend, name: c.original })
  }

  // Resource URIs are identities, never rewritten: the first backend in config order wins.
  for (const { backend, catalog } of catalogs) {
    for (const r of catalog.resources) {
      const owner = view.resourceRoutes.get(r.uri)
      if (owner !== undefined) {
        diagnostics.push({ level: 'warn', backend, message: `resource ${r.uri} is also offered by ${owner}; ${owner} wins` })
        continue
      }
      view.resourceRoutes.set(r.uri, backend)
      view.resources.push(r)
    }
    for (const t of catalog.resourceTemplates) {
      const owner = view.templateRoutes.find((x) => x.uriTemplate === t.uriTemplate)
      if (owner) {
        diagnostics.push({
          level: 'warn',
          backend,
          message: `resource template ${t.uriTemplate} is also offered by ${owner.backend}; ${owner.backend} wins`,
        })
        continue
      }
      let matcher: UriTemplate
      try {
        matcher = new UriTemplate(t.uriTemplate)
      } catch {
        diagnostics.push({ level: 'warn', backend, message: `resource template ${t.uriTemplate} is malformed; skipped` })
        continue
      }
      view.templateRoutes.push({ backend, uriTemplate: t.uriTemplate, matcher })
      view.resourceTemplates.push(t)
    }
  }
  return { view, diagnostics }
}

/** Finds the backend that owns a resource URI: exact match first, then templates in config order. */
export function routeResource(view: AggregatedView, uri: string): string | undefined {
  const exact = view.resourceRoutes.get(uri)
  if (exact !== undefined) return exact
  for (const t of view.templateRoutes) {
    try {
      if (t.matcher.match(uri)) return t.backend
    } catch {
      // a template that cannot match this URI shape is simply not the owner
    }
  }
  return undefined
}

/** One backend's `aggregation.tools` or `aggregation.prompts` entry. */
interface ItemRules<O> {
  filter: string[]
  exclude: string[]
  overrides: Record<string, O>
}

/** A backend's items after its filter, exclude and overrides, before conflict resolution. */
function candidates<T extends { name: string }, O extends { name?: string | undefined }>(
  backend: string,
  items: readonly T[],
  rules: ItemRules<O> | undefined,
  apply: (item: T, override: O) => T,
): Candidate<T>[] {
  const out: Candidate<T>[] = []
  for (const item of items) {
    if (rules && rules.filter.length > 0 && !rules.filter.includes(item.name)) continue
    if (rules?.exclude.includes(item.name)) continue
    const override = rules?.overrides[item.name]
    out.push({
      backend,
      original: item.name,
      name: override?.name ?? item.name,
      fixed: override?.name !== undefined,
      item: override ? apply(item, override) : item,
    })
  }
  return out
}

function applyToolOverride(tool: Tool, override: ToolOverrideConfig): Tool {
  const out: Tool = { ...tool }
  if (override.description !== undefined) out.description = override.description
  if (override.annotations) out.annotations = { ...tool.annotations, ...override.annotations }
  return out
}

function applyPromptOverride(prompt: Prompt, override: PromptOverrideConfig): Prompt {
  const out: Prompt = { ...prompt }
  if (override.title !== undefined) out.title = override.title
  if (override.description !== undefined) out.description = override.description
  return out
}

/**
 * The fix for a name clash, as YAML the operator can paste under `aggregation`: an override that
 * renames each item of `renamed` (the prompts list for a prompt: tool overrides do not rename
 * prompts).
 */
function renameFix<T>(kind: 'tool' | 'prompt', renamed: readonly Candidate<T>[], config: AggregationConfig): string {
  const entries = renamed.map((c) => {
    let name = applyPrefix(config.prefixFormat, c.backend, c.original)
    if (name === c.name) name = `${name}_2`
    return `{ backend: ${c.backend}, overrides: { ${c.original}: { name: ${toValidName(name)} } } }`
  })
  return `aggregation.${kind}s: [${entries.join(', ')}]`
}

function resolveNames<T>(
  candidates: Candidate<T>[],
  config: AggregationConfig,
  kind: 'tool' | 'prompt',
  diagnostics: ViewDiagnostic[],
): Map<string, Candidate<T>> {
  const byName = new Map<string, Candidate<T>[]>()
  for (const c of candidates) {
    const list = byName.get(c.name) ?? []
    list.push(c)
    byName.set(c.name, list)
  }
  const rank = (backend: string) => {
    const i = config.priorityOrder.indexOf(backend)
    return i === -1 ? Number.MAX_SAFE_INTEGER : i
  }

  const chosen: Array<[string, Candidate<T>]> = []
  for (const [name, group] of byName) {
    const conflict = new Set(group.map((c) => c.backend)).size > 1 || group.length > 1
    if (config.conflictResolution === 'prefix') {
      for (const c of group) {
        const prefixed = c.fixed || (config.prefixMode === 'on-conflict' && !conflict)
        chosen.push([prefixed ? c.name : applyPrefix(config.prefixFormat, c.backend, c.name), c])
      }
      continue
    }
    if (!conflict) {
      chosen.push([name, group[0] as Candidate<T>])
      continue
    }
    if (config.conflictResolution === 'priority') {
      // Stable sort keeps config order among backends priorityOrder does not mention.
      const sorted = [...group].sort((a, b) => rank(a.backend) - rank(b.backend))
      const winner = sorted[0] as Candidate<T>
      const losers = sorted.slice(1)
      chosen.push([name, winner])
      // One line per conflict, however many backends lose it.
      diagnostics.push({
        level: 'warn',
        backend: losers.map((c) => c.backend).join(', '),
        message: `${kind} ${name} hidden: ${winner.backend} has priority; to expose it too, rename it: ${renameFix(kind, losers, config)}`,
      })
      continue
    }
    // manual: the operator must settle every conflict with an override; renaming all but the
    // first leaves the first with the name.
    diagnostics.push({
      level: 'error',
      backend: group.map((c) => c.backend).join(', '),
      message: `${kind} ${name} is offered by ${group.map((c) => c.backend).join(' and ')}; hidden until renamed (manual conflict resolution): ${renameFix(kind, group.slice(1), config)}`,
    })
  }

  // Final pass: MCP name rules, then uniqueness of what is actually exposed.
  const out = new Map<string, Candidate<T>>()
  for (const [name, c] of chosen) {
    const exposed = toValidName(name)
    const taken = out.get(exposed)
    if (taken) {
      diagnostics.push({
        level: 'error',
        backend: c.backend,
        message: `${kind} ${c.original} would be exposed as ${exposed}, already used by ${taken.backend}; hidden: ${renameFix(kind, [{ ...c, name: exposed }], config)}`,
      })
      continue
    }
    out.set(exposed, c)
  }
  return out
}
