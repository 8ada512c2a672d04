import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import type { z } from 'zod'
import { ConfigError, formatPath, type ConfigIssue } from './errors.js'
import { createConfigSchema, type VmcpConfig } from './schema.js'

export interface LoadConfigOptions {
  /** Environment used for `{ env: NAME }` refs; defaults to `process.env`. */
  env?: Readonly<Record<string, string | undefined>>
}

/** A loaded configuration plus where it came from (for relative paths and messages). */
export interface LoadedConfig {
  config: VmcpConfig
  path: string
}

/**
 * Reads, parses and validates a vmcp YAML file. Throws `ConfigError` listing every problem with
 * its YAML path; nothing touches the network.
 */
export function loadConfigFile(path: string, options: LoadConfigOptions = {}): LoadedConfig {
  const abs = resolve(path)
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError([{ path: '(file)', message: `cannot read ${path} (${code})` }])
  }
  return { config: parseConfigText(text, { ...options, baseDir: dirname(abs) }), path: abs }
}

export function parseConfigText(
  text: string,
  options: LoadConfigOptions & { baseDir: string },
): VmcpConfig {
  // prettyErrors would bury the position inside the message; a LineCounter gives it to us plain.
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter })
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0])
        return {
          path: '(yaml)',
          message: `line ${line}, column ${col}: ${e.message.split('\n')[0]}`,
        }
      }),
    )
  }
  const raw: unknown = doc.toJS()
  return validateConfig(raw ?? {}, options)
}

export function validateConfig(
  raw: unknown,
  options: LoadConfigOptions & { baseDir: string },
): VmcpConfig {
  const schema = createConfigSchema({
    baseDir: options.baseDir,
    env: options.env ?? process.env,
    resolveSecrets: true,
  })
  const parsed = schema.safeParse(raw)
  if (!parsed.success) throw new ConfigError(parsed.error.issues.flatMap((i) => toIssues(i, raw)))
  const issues = crossCheck(parsed.data)
  if (issues.length > 0) throw new ConfigError(issues)
  return parsed.data
}

function toIssues(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue[] {
  const path = [...issue.path]
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ path: formatPath([...path, k]), message: 'unknown key' }))
    case 'invalid_union': {
      if (issue.discriminator && issue.errors.length === 0 && 'options' in issue) {
        const options = issue.options ?? []
        return [
          {
            path: formatPath(path),
            message: `must be one of: ${options.map((o) => String(o)).join(', ')}`,
          },
        ]
      }
      // When the value has the wrong type for every branch (a bare string where a secret ref is
      // required), the branches only say "must be an object": the union's own message is clearer.
      const wrongType = issue.errors.every((b) =>
        b.every((i) => i.code === 'invalid_type' && i.path.length === 0),
      )
      if (wrongType && valueAt(raw, path) !== undefined) {
        return [{ path: formatPath(path), message: issue.message }]
      }
      // Report the branch that got furthest: its issues are the useful ones.
      const branches = issue.errors.filter((b) => b.length > 0)
      const best = branches.sort((a, b) => a.length - b.length)[0]
      if (best) return best.flatMap((i) => toIssues({ ...i, path: [...path, ...i.path] }, raw))
      return [{ path: formatPath(path), message: issue.message }]
    }
    case 'invalid_value':
      return [
        {
          path: formatPath(path),
          message: `must be one of: ${issue.values.map((v) => String(v)).join(', ')}`,
        },
      ]
    case 'invalid_type':
      return [
        {
          path: formatPath(path),
          message: valueAt(raw, path) === undefined ? 'is required' : `must be ${article(issue.expected)}`,
        },
      ]
    case 'too_big':
    case 'too_small': {
      const bound = String(issue.code === 'too_big' ? issue.maximum : issue.minimum)
      const word = issue.code === 'too_big' ? 'most' : 'least'
      const unit = issue.origin === 'string' ? ' characters' : issue.origin === 'array' ? ' items' : ''
      return [{ path: formatPath(path), message: `must be at ${word} ${bound}${unit}` }]
    }
    default:
      return [{ path: formatPath(path), message: issue.message }]
  }
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = raw
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<PropertyKey, unknown>)[seg]
  }
  return cur
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`
}

/** Rules that span fields; each message says what to change. */
function crossCheck(config: VmcpConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const names = new Set<string>()
  config.backends.forEach((b, i) => {
    if (names.has(b.name)) {
      issues.push({ path: `backends[${i}].name`, message: `duplicate backend name "${b.name}"` })
    }
    names.add(b.name)
  })
  const known = (n: string) => names.has(n)
  const knownList = () => (names.size ? [...names].join(', ') : '(no backends configured)')

  for (const [backendName, strategy] of Object.entries(config.outgoingAuth.backends)) {
    if (!known(backendName)) {
      issues.push({
        path: `outgoingAuth.backends.${backendName}`,
        message: `no backend named "${backendName}" (known: ${knownList()})`,
      })
    }
    if (strategy.type === 'upstream_inject') {
      issues.push({
        path: `outgoingAuth.backends.${backendName}.type`,
        message:
          'upstream_inject needs the embedded authorization server: authServer is not configured',
      })
    }
  }
  if (config.outgoingAuth.default.type === 'upstream_inject') {
    issues.push({
      path: 'outgoingAuth.default.type',
      message: 'upstream_inject needs the embedded authorization server: authServer is not configured',
    })
  }

  const agg = config.aggregation
  agg.priorityOrder.forEach((n, i) => {
    if (!known(n)) {
      issues.push({
        path: `aggregation.priorityOrder[${i}]`,
        message: `no backend named "${n}" (known: ${knownList()})`,
      })
    }
  })
  if (agg.conflictResolution === 'priority' && agg.priorityOrder.length === 0) {
    issues.push({
      path: 'aggregation.priorityOrder',
      message: 'is required when conflictResolution is priority',
    })
  }
  const seen = new Set<string>()
  agg.tools.forEach((t, i) => {
    if (!known(t.backend)) {
      issues.push({
        path: `aggregation.tools[${i}].backend`,
        message: `no backend named "${t.backend}" (known: ${knownList()})`,
      })
    }
    if (seen.has(t.backend)) {
      issues.push({
        path: `aggregation.tools[${i}].backend`,
        message: `"${t.backend}" is configured twice; merge the entries`,
      })
    }
    seen.add(t.backend)
    for (const [tool, o] of Object.entries(t.overrides)) {
      if (o.name === undefined && o.description === undefined && o.annotations === undefined) {
        issues.push({
          path: `aggregation.tools[${i}].overrides.${tool}`,
          message: 'needs at least one of name, description, annotations',
        })
      }
    }
  })

  const op = config.operational
  if (op.healthCheckTimeout >= op.healthCheckInterval) {
    issues.push({
      path: 'operational.healthCheckTimeout',
      message: 'must be shorter than operational.healthCheckInterval',
    })
  }
  return issues
}
