import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import type { z } from 'zod'
import { ConfigError, formatPath, type ConfigIssue } from './errors.js'
import { buildConfigJsonSchema } from './json-schema.js'
import { didYouMean } from './suggest.js'
import {
  createConfigSchema,
  type AuthServerConfig,
  type IncomingAuthConfig,
  type OidcConfig,
  type UpstreamConfig,
  type VmcpConfig,
} from './schema.js'

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
  if (!parsed.success) {
    // One round: the schema's errors and the cross-field ones of every section that is valid.
    const issues = parsed.error.issues.flatMap((i) => toIssues(i, raw))
    const cross = crossCheck(parseSections(schema, raw), rawBackendNames(raw))
    const seen = new Set(issues.map((i) => `${i.path}\0${i.message}`))
    throw new ConfigError([...issues, ...cross.filter((i) => !seen.has(`${i.path}\0${i.message}`))])
  }
  const issues = crossCheck({ config: parsed.data, failed: new Set() }, rawBackendNames(raw))
  if (issues.length > 0) throw new ConfigError(issues)
  // stateDir is the default home of everything vmcp keeps, the auth server's key included.
  const rc = parsed.data.authServer?.runConfig
  if (rc && valueAt(raw, ['authServer', 'runConfig', 'dataDir']) === undefined) rc.dataDir = parsed.data.stateDir
  return parsed.data
}

function toIssues(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue[] {
  const path = [...issue.path]
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({
        path: formatPath([...path, k]),
        // A key of another branch of a union is not a typo (both env and file in a secret ref).
        message: `unknown key${didYouMean(k, knownKeysAt(path).filter((c) => c !== k))}`,
      }))
    case 'invalid_key':
      // A record key (a header name) failed its own check: say what the key must be.
      return issue.issues.map((i) => ({ path: formatPath(path), message: i.message }))
    case 'invalid_union': {
      if (issue.discriminator && issue.errors.length === 0 && 'options' in issue) {
        const options = issue.options ?? []
        return [
          {
            path: formatPath(path),
            message: `must be one of: ${options.map((o) => String(o)).join(', ')}${nearMiss(raw, path, options)}`,
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
          message: `must be one of: ${issue.values.map((v) => String(v)).join(', ')}${nearMiss(raw, path, issue.values)}`,
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

/** `; did you mean "x"?` when the value written at `path` is a near miss of one of `options`. */
function nearMiss(raw: unknown, path: readonly PropertyKey[], options: readonly unknown[]): string {
  const written = valueAt(raw, path)
  if (typeof written !== 'string') return ''
  return didYouMean(written, options.map((o) => String(o)))
}

type JsonNode = Record<string, unknown>
let jsonSchema: JsonNode | undefined

/** The keys the schema allows at a path (every branch of a union), for "did you mean". */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  jsonSchema ??= buildConfigJsonSchema()
  const branches = (n: JsonNode): JsonNode[] => [
    n,
    ...(['anyOf', 'oneOf', 'allOf'] as const).flatMap((k) => ((n[k] as JsonNode[] | undefined) ?? []).flatMap(branches)),
  ]
  const child = (n: JsonNode, seg: PropertyKey): JsonNode[] => {
    if (typeof seg === 'number') return n.items ? [n.items as JsonNode] : []
    const props = n.properties as Record<string, JsonNode> | undefined
    const own = props?.[String(seg)]
    if (own) return [own]
    return typeof n.additionalProperties === 'object' ? [n.additionalProperties as JsonNode] : []
  }
  let nodes = [jsonSchema]
  for (const seg of path) nodes = nodes.flatMap(branches).flatMap((n) => child(n, seg))
  return nodes.flatMap(branches).flatMap((n) => Object.keys((n.properties as object | undefined) ?? {}))
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

/** The top-level sections that passed the schema, and the names of those that did not. */
interface Sections {
  config: { [K in keyof VmcpConfig]?: VmcpConfig[K] }
  failed: ReadonlySet<string>
}

/**
 * Each top-level section parsed on its own, so the cross-field rules can still run over the
 * sections that are valid while another one is not: one round reports every error.
 */
function parseSections(schema: ReturnType<typeof createConfigSchema>, raw: unknown): Sections {
  const obj = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>
  const config: Record<string, unknown> = {}
  const failed = new Set<string>()
  for (const [key, field] of Object.entries(schema.shape)) {
    const r = (field as z.ZodType).safeParse(obj[key])
    if (r.success) config[key] = r.data
    else failed.add(key)
  }
  return { config, failed }
}

/** Backend names as written (before validation), so name rules run even when a backend is invalid. */
function rawBackendNames(raw: unknown): Array<string | undefined> {
  const list = valueAt(raw, ['backends'])
  if (!Array.isArray(list)) return []
  return list.map((b) => {
    const n = valueAt(b, ['name'])
    return typeof n === 'string' ? n : undefined
  })
}

/**
 * Rules that span fields; each message says what to change. A rule runs only when every section
 * it reads passed the schema, so a broken section yields its own errors only.
 */
function crossCheck({ config, failed }: Sections, backendNames: ReadonlyArray<string | undefined>): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const names = new Set<string>()
  backendNames.forEach((name, i) => {
    if (name === undefined) return
    if (names.has(name)) {
      issues.push({ path: `backends[${i}].name`, message: `duplicate backend name "${name}"` })
    }
    names.add(name)
  })
  const known = (n: string) => names.has(n)
  const noBackend = (n: string) =>
    `no backend named "${n}" (known: ${names.size ? [...names].join(', ') : '(no backends configured)'})${didYouMean(n, names)}`
  const has = (...keys: Array<keyof VmcpConfig>) => keys.every((k) => !failed.has(k))

  const modeB = config.authServer?.runConfig
  const upstreamNames = modeB?.upstreams.map((u) => u.name) ?? []
  const checkStrategy = (path: string, strategy: VmcpConfig['outgoingAuth']['default']) => {
    // Whether Mode B is on is unknown while authServer is invalid.
    if (!has('authServer')) return
    if (strategy.type === 'token_exchange' && strategy.tokenExchange.subjectProviderName !== undefined) {
      const provider = strategy.tokenExchange.subjectProviderName
      if (!modeB) {
        issues.push({
          path: `${path}.tokenExchange.subjectProviderName`,
          message: 'needs the embedded authorization server (authServer): upstream tokens exist only in Mode B; remove it to exchange the caller token',
        })
      } else if (!upstreamNames.includes(provider)) {
        issues.push({
          path: `${path}.tokenExchange.subjectProviderName`,
          message: `"${provider}" is not an upstream of authServer.runConfig (known: ${upstreamNames.join(', ')})`,
        })
      }
    }
    if (strategy.type !== 'upstream_inject') return
    // V-01
    if (!modeB) {
      issues.push({
        path: `${path}.type`,
        message: 'upstream_inject needs the embedded authorization server: authServer is not configured',
      })
      return
    }
    const provider = strategy.upstreamInject.providerName
    // V-06
    if (provider.trim() === '') {
      issues.push({
        path: `${path}.upstreamInject.providerName`,
        message: `must name the upstream whose token to inject (one of: ${upstreamNames.join(', ')})`,
      })
    } else if (!upstreamNames.includes(provider)) {
      // V-02
      issues.push({
        path: `${path}.upstreamInject.providerName`,
        message: `"${provider}" is not an upstream of authServer.runConfig (known: ${upstreamNames.join(', ')})`,
      })
    }
  }
  const outgoing = config.outgoingAuth
  for (const [backendName, strategy] of Object.entries(outgoing?.backends ?? {})) {
    if (!known(backendName)) {
      issues.push({ path: `outgoingAuth.backends.${backendName}`, message: noBackend(backendName) })
    }
    checkStrategy(`outgoingAuth.backends.${backendName}`, strategy)
  }
  if (outgoing) checkStrategy('outgoingAuth.default', outgoing.default)
  if (modeB) issues.push(...checkModeB(has('incomingAuth') ? config.incomingAuth : undefined, modeB))

  const agg = config.aggregation ?? { priorityOrder: [], conflictResolution: 'prefix', tools: [], prompts: [] }
  agg.priorityOrder.forEach((n, i) => {
    if (!known(n)) {
      issues.push({
        path: `aggregation.priorityOrder[${i}]`,
        message: noBackend(n),
      })
    }
  })
  if (agg.conflictResolution === 'priority' && agg.priorityOrder.length === 0) {
    issues.push({
      path: 'aggregation.priorityOrder',
      message: 'is required when conflictResolution is priority',
    })
  }
  for (const kind of ['tools', 'prompts'] as const) {
    const seen = new Set<string>()
    agg[kind].forEach((t, i) => {
      if (!known(t.backend)) {
        issues.push({
          path: `aggregation.${kind}[${i}].backend`,
          message: noBackend(t.backend),
        })
      }
      if (seen.has(t.backend)) {
        issues.push({
          path: `aggregation.${kind}[${i}].backend`,
          message: `"${t.backend}" is configured twice; merge the entries`,
        })
      }
      seen.add(t.backend)
      for (const [item, o] of Object.entries(t.overrides)) {
        if (Object.values(o).every((v) => v === undefined)) {
          issues.push({
            path: `aggregation.${kind}[${i}].overrides.${item}`,
            message: `needs at least one of ${kind === 'tools' ? 'name, description, annotations' : 'name, title, description'}`,
          })
        }
      }
    })
  }

  const op = config.operational
  if (op && op.healthCheckTimeout >= op.healthCheckInterval) {
    issues.push({
      path: 'operational.healthCheckTimeout',
      message: 'must be shorter than operational.healthCheckInterval',
    })
  }
  return issues
}

/** Mode B rules that tie authServer.runConfig to the rest of the file (V-04, V-07 and friends). */
function checkModeB(incomingAuth: IncomingAuthConfig | undefined, rc: AuthServerConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const names = new Set<string>()
  rc.upstreams.forEach((u, i) => {
    if (names.has(u.name)) {
      issues.push({ path: `authServer.runConfig.upstreams[${i}].name`, message: `duplicate upstream name "${u.name}"` })
    }
    names.add(u.name)
  })
  rc.upstreams.forEach((u, i) => issues.push(...checkUpstreamClient(u, `authServer.runConfig.upstreams[${i}]`)))
  const first = rc.upstreams[0]
  if (first?.type === 'oauth2' && !first.oauth2.userinfo) {
    issues.push({
      path: 'authServer.runConfig.upstreams[0].oauth2.userinfo',
      message: 'is required on the first upstream: it decides who the user is (sub), and an oauth2 provider says so only through userinfo',
    })
  }
  // Unknown while incomingAuth is invalid: its own errors say what to fix.
  if (incomingAuth === undefined) {
    // nothing to compare
  } else if (incomingAuth.type !== 'oidc') {
    issues.push({
      path: 'incomingAuth.type',
      message: `must be oidc when authServer is set (vmcp validates its own tokens): set incomingAuth.oidc.issuer to ${rc.issuer}`,
    })
  } else {
    const oidc = incomingAuth.oidc
    // V-04
    if (oidc.issuer !== rc.issuer) {
      issues.push({
        path: 'incomingAuth.oidc.issuer',
        message: `must equal authServer.runConfig.issuer (${rc.issuer}): vmcp validates the tokens it issues itself`,
      })
    }
    // V-07
    if (!rc.allowedAudiences.includes(oidc.audience)) {
      issues.push({
        path: 'incomingAuth.oidc.audience',
        message: `"${oidc.audience}" is not in authServer.runConfig.allowedAudiences (${rc.allowedAudiences.join(', ')}); add it there or change the audience`,
      })
    }
  }
  if (rc.storage.type === 'redis') {
    if (!rc.storage.redis) {
      issues.push({ path: 'authServer.runConfig.storage.redis', message: 'is required when storage.type is redis' })
    }
    if (!rc.storage.encryptionKey) {
      issues.push({
        path: 'authServer.runConfig.storage.encryptionKey',
        message: 'is required with redis storage: upstream tokens are encrypted at rest (32 bytes, base64 or hex)',
      })
    }
  }
  const key = rc.storage.encryptionKey?.reveal()
  if (key !== undefined && decodeKey(key) === undefined) {
    issues.push({
      path: 'authServer.runConfig.storage.encryptionKey',
      message: 'must be 32 bytes, as 64 hex characters or base64',
    })
  }
  return issues
}

/**
 * How vmcp is a client of one upstream: a pre-issued `clientId` or RFC 7591 registration (`dcr`),
 * never both; `dcr` names exactly one of discoveryUrl / registrationEndpoint; without discovery the
 * endpoints must be configured.
 */
function checkUpstreamClient(u: UpstreamConfig, base: string): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const block = `${base}.${u.type}`
  const c = u.type === 'oidc' ? u.oidc : u.oauth2
  if (c.clientId !== undefined && c.dcr) {
    issues.push({
      path: `${block}.dcr`,
      message: 'cannot be combined with clientId: remove clientId (and clientSecret) to register dynamically, or remove dcr to use the pre-issued client',
    })
  } else if (c.clientId === undefined && !c.dcr) {
    issues.push({
      path: `${block}.clientId`,
      message: 'is required unless dcr is set: give the client id the provider issued you, or add dcr: { discoveryUrl: <issuer URL> } to let vmcp register itself',
    })
  }
  if (c.dcr && c.clientSecret && c.clientId === undefined) {
    issues.push({
      path: `${block}.clientSecret`,
      message: 'comes from the registration when dcr is set: remove clientSecret',
    })
  }
  const d = c.dcr
  if (d) {
    if (d.discoveryUrl !== undefined && d.registrationEndpoint !== undefined) {
      issues.push({
        path: `${block}.dcr`,
        message: 'set either discoveryUrl or registrationEndpoint, not both: discoveryUrl finds the registration endpoint itself',
      })
    } else if (d.discoveryUrl === undefined && d.registrationEndpoint === undefined) {
      issues.push({
        path: `${block}.dcr`,
        message: "needs discoveryUrl (the authorization server's issuer or metadata URL) or registrationEndpoint",
      })
    }
    if (d.preferClientMetadataDocument && d.discoveryUrl === undefined) {
      issues.push({
        path: `${block}.dcr.preferClientMetadataDocument`,
        message: 'needs dcr.discoveryUrl: whether the server accepts client metadata documents is read from its metadata',
      })
    }
  }
  // With dcr but neither URL, the dcr issue above already says what to add.
  const needsEndpoints = d ? d.discoveryUrl === undefined && d.registrationEndpoint !== undefined : true
  if (u.type === 'oauth2' && needsEndpoints) {
    const why = d ? 'with dcr.registrationEndpoint (nothing is discovered)' : 'without dcr.discoveryUrl'
    for (const key of ['authorizationEndpoint', 'tokenEndpoint'] as const) {
      if (u.oauth2[key] === undefined) {
        issues.push({ path: `${block}.${key}`, message: `is required ${why}: set it, or use dcr.discoveryUrl to discover it` })
      }
    }
  }
  return issues
}

/** A 32-byte AES-256 key from hex or base64 text, or undefined when it is not one. */
export function decodeKey(text: string): Buffer | undefined {
  const t = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex')
  const b = Buffer.from(t, 'base64')
  return b.length === 32 ? b : undefined
}

/**
 * Warnings a valid configuration still deserves at startup (V-03 and insecure defaults).
 * The CLI and `createVmcp` log them; `vmcp validate` prints them.
 */
export function configWarnings(config: VmcpConfig): ConfigIssue[] {
  const out: ConfigIssue[] = []
  if (config.backends.length === 0 && config.registries.length === 0) {
    out.push({
      path: 'backends',
      message: 'no backends and no registries: clients will see no tools; add a backend (see vmcp.example.yaml)',
    })
  }
  if (config.incomingAuth.type === 'oidc') out.push(...oidcWarnings(config.incomingAuth.oidc))
  const rc = config.authServer?.runConfig
  if (!rc) return out
  const strategies = [
    ['outgoingAuth.default', config.outgoingAuth.default] as const,
    ...Object.entries(config.outgoingAuth.backends).map(([n, s]) => [`outgoingAuth.backends.${n}`, s] as const),
  ]
  for (const [path, s] of strategies) {
    // V-03
    if (s.type === 'token_exchange' && s.tokenExchange.subjectProviderName === undefined) {
      out.push({
        path,
        message: `token_exchange while vmcp is its own issuer: the subject token is vmcp's own JWT (issuer ${rc.issuer}), which ${s.tokenExchange.tokenUrl} must trust; to exchange an upstream identity provider's token instead, set tokenExchange.subjectProviderName to that upstream`,
      })
    }
  }
  rc.upstreams.forEach((u, i) => {
    if (u.type === 'oauth2' && u.oauth2.scopes.includes('openid')) {
      out.push({
        path: `authServer.runConfig.upstreams[${i}].oauth2.scopes`,
        message: `asks for openid, but an oauth2 upstream's ID token is not validated; use type: oidc for an OpenID provider`,
      })
    }
  })
  if (rc.storage.type === 'memory') {
    out.push({
      path: 'authServer.runConfig.storage.type',
      message: 'memory storage: registered clients, refresh tokens and upstream tokens are lost when vmcp restarts, and replicas do not share them; use redis in production',
    })
  }
  return out
}

function oidcWarnings(oidc: OidcConfig): ConfigIssue[] {
  const out: ConfigIssue[] = []
  // RFC 8707 §2 / MCP authorization "Token Audience Binding": the audience is this resource.
  if (oidc.audience !== oidc.resource) {
    out.push({
      path: 'incomingAuth.oidc.audience',
      message: `"${oidc.audience}" is not the resource URL (${oidc.resource}): tokens the issuer mints for anything else with this audience (another API, or the ID tokens of a client whose id it is) are only kept out by the token type checks; prefer audience: ${oidc.resource}`,
    })
  }
  if (oidc.introspection?.requireAudience === false) {
    out.push({
      path: 'incomingAuth.oidc.introspection.requireAudience',
      message: 'false: any active token of the issuer without an aud claim is accepted, whichever client or resource it was issued for',
    })
  }
  return out
}
