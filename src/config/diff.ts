import { Secret } from '../log/secret.js'
import type {
  AggregationConfig,
  BackendConfig,
  OutgoingStrategyConfig,
  RegistryConfig,
  VmcpConfig,
} from './schema.js'

/** What a hot reload changes: what vmcp applies live, and what waits for a restart. */
export interface ConfigDiff {
  /** Backends to start: new names, and the new version of changed ones. */
  added: BackendConfig[]
  /** Backend names to stop: gone, and the old version of changed ones. */
  removed: string[]
  /** Names in both lists: same name, other settings or other outgoing auth. */
  changed: string[]
  /** The new aggregation rules, when they differ. */
  aggregation?: AggregationConfig
  /** The new registries, when they differ: their backends are listed again from scratch. */
  registries?: RegistryConfig[]
  /** YAML paths whose new value needs a restart; the running value is kept. */
  restartRequired: string[]
}

// Sections whose keys are reported one by one; any other top-level key is reported whole.
const BY_KEY = new Set(['server', 'operational'])
// Applied live (or meaningless at run time, like $schema). The log level is not: child loggers
// keep the level they were made with.
const LIVE = new Set(['backends', 'aggregation', 'outgoingAuth', 'registries', '$schema'])

/**
 * Compares the running configuration with a new one. Backends are matched by name; a backend
 * whose settings or effective outgoing strategy differ counts as changed (stop, then start).
 * Secret values are compared by content, never printed.
 */
export function diffConfig(running: VmcpConfig, next: VmcpConfig): ConfigDiff {
  const before = new Map(running.backends.map((b) => [b.name, b]))
  const after = new Map(next.backends.map((b) => [b.name, b]))
  const diff: ConfigDiff = { added: [], removed: [], changed: [], restartRequired: [] }
  for (const name of before.keys()) if (!after.has(name)) diff.removed.push(name)
  for (const [name, backend] of after) {
    const old = before.get(name)
    if (!old) diff.added.push(backend)
    else if (!sameValue(old, backend) || !sameValue(strategyOf(running, name), strategyOf(next, name))) {
      diff.changed.push(name)
      diff.removed.push(name)
      diff.added.push(backend)
    }
  }
  if (!sameValue(running.aggregation, next.aggregation)) diff.aggregation = next.aggregation
  if (!sameValue(running.registries, next.registries)) diff.registries = next.registries
  diff.restartRequired = changedPaths(running, next).filter((p) => !LIVE.has(p))
  return diff
}

/**
 * The configuration vmcp runs after a reload: the live parts from `next`, everything that needs a
 * restart kept from `running`.
 */
export function mergeLive(running: VmcpConfig, next: VmcpConfig): VmcpConfig {
  return {
    ...running,
    backends: next.backends,
    aggregation: next.aggregation,
    outgoingAuth: next.outgoingAuth,
    registries: next.registries,
  }
}

/** The strategy a backend of this name gets: its own entry, else the default. */
export function strategyOf(config: VmcpConfig, name: string): OutgoingStrategyConfig {
  return config.outgoingAuth.backends[name] ?? config.outgoingAuth.default
}

function changedPaths(running: VmcpConfig, next: VmcpConfig): string[] {
  const a = running as unknown as Record<string, unknown>
  const b = next as unknown as Record<string, unknown>
  const out: string[] = []
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[key]
    const y = b[key]
    if (BY_KEY.has(key) && isPlainObject(x) && isPlainObject(y)) {
      for (const sub of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (!sameValue(x[sub], y[sub])) out.push(`${key}.${sub}`)
      }
    } else if (!sameValue(x, y)) out.push(key)
  }
  return out
}

/** Deep equality of validated config values; secrets compare by content. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a instanceof Secret || b instanceof Secret) {
    return a instanceof Secret && b instanceof Secret && a.reveal() === b.reveal()
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]))
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const k of keys) if (!sameValue(a[k], b[k])) return false
    return true
  }
  return false
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Secret)
}
