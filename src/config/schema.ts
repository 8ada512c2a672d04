import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { Secret } from '../log/secret.js'
import { isCidrOrAddress } from '../net/client-address.js'
import { checkSecureUrl } from '../net/url-policy.js'
import { createAuthServerSchema } from './auth-server-schema.js'
import { createRegistrySchema } from './registry-schema.js'
import { DURATION_PATTERN, parseDuration } from './duration.js'

/** Where secret refs and relative paths are resolved. */
export interface SchemaContext {
  baseDir: string
  env: Readonly<Record<string, string | undefined>>
  /** false when the schema is only described (JSON Schema export): refs are not read. */
  resolveSecrets: boolean
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/** Field types shared by every section: durations, URLs, secret refs, names. */
export function createPrimitives(ctx: SchemaContext) {
  const duration = (fallback: string) =>
    z
      .string()
      .regex(new RegExp(DURATION_PATTERN), 'must be a duration such as 500ms, 30s, 5m or 1h')
      .default(fallback)
      .transform((s) => parseDuration(s) ?? 0)

  const secureUrl = z.string().superRefine((s, c) => {
    const why = checkSecureUrl(s)
    if (why) c.addIssue({ code: 'custom', message: why })
  })

  // Secrets are always refs, never bare strings, so they never end up committed in YAML.
  const envRef = { env: z.string().min(1).describe('environment variable holding the secret') }
  const fileRef = { file: z.string().min(1).describe('file holding the secret (trailing newline trimmed)') }
  const refShapes = <T extends z.ZodRawShape>(extra: T) =>
    z.union([z.strictObject({ ...envRef, ...extra }), z.strictObject({ ...fileRef, ...extra })], {
      error: 'must be a secret ref: { env: NAME } or { file: PATH } (bare values are not allowed)',
    })
  /** The secret a ref names, or undefined (with an issue) when it cannot be read. */
  const resolveRef = (ref: { env: string } | { file: string }, c: z.RefinementCtx): Secret | undefined => {
    if (!ctx.resolveSecrets) return new Secret('')
    if ('env' in ref) {
      const v = ctx.env[ref.env]
      if (v === undefined || v === '') {
        c.addIssue({ code: 'custom', message: `environment variable ${ref.env} is not set` })
        return undefined
      }
      return new Secret(v)
    }
    const path = isAbsolute(ref.file) ? ref.file : resolve(ctx.baseDir, ref.file)
    try {
      return new Secret(readFileSync(path, 'utf8').replace(/\r?\n$/, ''))
    } catch (err) {
      // The errno code (ENOENT, EACCES) tells the operator what to fix; the path is theirs.
      const code = (err as NodeJS.ErrnoException).code ?? 'error'
      c.addIssue({ code: 'custom', message: `cannot read secret file ${ref.file} (${code})` })
      return undefined
    }
  }
  const secretRef = refShapes({})
    .describe('a secret: { env: NAME } or { file: PATH }')
    .transform((ref, c): Secret => resolveRef(ref, c) ?? z.NEVER)

  // A header value may need a scheme before the secret (`Authorization: Bearer <token>`) while
  // the env var or file holds only the token: `prefix` is joined on once, here.
  const headerSecret = refShapes({
    prefix: z.string().optional().describe('text sent before the secret, e.g. "Bearer "'),
  })
    .describe('a secret header value: { env: NAME } or { file: PATH }, optional prefix')
    .transform((ref, c): Secret => {
      const secret = resolveRef(ref, c)
      if (!secret) return z.NEVER
      return ref.prefix ? new Secret(ref.prefix + secret.reveal()) : secret
    })
  // RFC 9110 §5.1: a field name is a token.
  const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')

  const name = z.string().regex(NAME, 'must be 1-63 characters of [A-Za-z0-9_.-], starting alphanumeric')
  // Relative paths in the file mean relative to the file.
  const path = z.string().min(1).transform((f) => resolve(ctx.baseDir, f))

  return { duration, secureUrl, secretRef, headerSecret, headerName, name, path }
}

export type Primitives = ReturnType<typeof createPrimitives>

export function createConfigSchema(ctx: SchemaContext) {
  const primitives = createPrimitives(ctx)
  const { duration, secureUrl, secretRef, headerSecret, headerName, name } = primitives

  // Plain values and secret refs alike become `Secret`s, so none of them prints.
  const asSecrets = (map: Record<string, string | Secret>): Record<string, Secret> =>
    Object.fromEntries(Object.entries(map).map(([k, v]) => [k, typeof v === 'string' ? new Secret(v) : v]))
  // Child process environment: plain values, or secret refs for credentials.
  const childEnv = z
    .record(z.string(), z.union([secretRef, z.string()])) // ref first: its errors win a tie
    .default({})
    .describe('extra environment variables (values may be secret refs)')
    .transform(asSecrets)
  const cwd = z
    .string()
    .optional()
    .transform((d) => resolve(ctx.baseDir, d ?? '.'))

  const httpBackend = z.strictObject({
    name,
    transport: z.enum(['streamable-http', 'sse']),
    url: secureUrl,
    headers: z
      .record(headerName, z.union([headerSecret, z.string()])) // ref first: its errors win a tie
      .default({})
      .describe('headers sent on every request; values are plain strings or secret refs')
      .transform(asSecrets),
    launch: z
      .strictObject({
        command: z.string().min(1),
        args: z.array(z.string()).default([]),
        env: childEnv,
        cwd,
      })
      .optional()
      .describe('start this local process and keep it running (vmcp stops it on shutdown)'),
  })
  const stdioBackend = z.strictObject({
    name,
    transport: z.literal('stdio'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: childEnv,
    cwd,
  })
  const backend = z.discriminatedUnion('transport', [httpBackend, stdioBackend])

  const oidc = z.strictObject({
    issuer: secureUrl.describe('exact expected `iss`'),
    audience: z.string().min(1).describe('`aud` must contain this value'),
    resource: secureUrl.describe('RFC 9728 resource identifier of this endpoint'),
    jwksUrl: secureUrl.optional().describe('skip discovery and use this JWKS'),
    scopes: z.array(z.string().min(1)).default([]).describe('advertised in metadata and challenges'),
    requiredScopes: z.array(z.string().min(1)).default([]),
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
      .min(1)
      .default(['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA']),
    clockSkew: duration('30s'),
    introspection: z
      .strictObject({
        url: secureUrl,
        clientId: z.string().min(1),
        clientSecret: secretRef,
        requireAudience: z
          .boolean()
          .default(true)
          .describe('refuse an active token whose `aud` is absent (false: accept it, with a warning)'),
      })
      .optional()
      .describe('RFC 7662 introspection for opaque tokens'),
  })
  const incomingAuth = z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('anonymous') }),
    z.strictObject({ type: z.literal('oidc'), oidc }),
  ])

  const strategy = z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('unauthenticated') }),
    z.strictObject({
      type: z.literal('header_injection'),
      headerInjection: z
        .strictObject({
          headerName: headerName.optional().describe('one header: its name (with `value`)'),
          value: secretRef.optional().describe('one header: its value'),
          headers: z
            .record(headerName, headerSecret)
            .optional()
            .describe('several headers: name → secret ref (optional prefix)'),
        })
        .superRefine((h, c) => {
          const single = h.headerName !== undefined || h.value !== undefined
          if (single && h.headers !== undefined) {
            c.addIssue({ code: 'custom', path: ['headers'], message: 'use either headerName/value or headers, not both' })
          } else if (h.headers !== undefined) {
            if (Object.keys(h.headers).length === 0) {
              c.addIssue({ code: 'custom', path: ['headers'], message: 'must name at least one header' })
            }
          } else {
            if (h.headerName === undefined) c.addIssue({ code: 'custom', path: ['headerName'], message: 'is required (or give headers: { Name: { env: VAR } })' })
            if (h.value === undefined) c.addIssue({ code: 'custom', path: ['value'], message: 'is required' })
          }
        })
        .transform((h): { headers: Record<string, Secret> } => ({
          headers: h.headers ?? { [h.headerName as string]: h.value as Secret },
        })),
    }),
    z.strictObject({
      type: z.literal('token_exchange'),
      tokenExchange: z.strictObject({
        tokenUrl: secureUrl,
        clientId: z.string().min(1),
        clientSecret: secretRef,
        audience: z.string().min(1).optional(),
        resource: z.string().min(1).optional(),
        scopes: z.array(z.string().min(1)).default([]),
        subjectTokenType: z.string().default('urn:ietf:params:oauth:token-type:access_token'),
        subjectProviderName: z
          .string()
          .min(1)
          .optional()
          .describe("Mode B: exchange this upstream's token for the user instead of vmcp's own JWT"),
      }),
    }),
    z.strictObject({
      type: z.literal('upstream_inject'),
      upstreamInject: z.strictObject({ providerName: z.string() }),
    }),
  ])

  const override = z.strictObject({
    name: z.string().min(1).optional(),
    description: z.string().optional(),
    annotations: z
      .strictObject({
        title: z.string().optional(),
        readOnlyHint: z.boolean().optional(),
        destructiveHint: z.boolean().optional(),
        idempotentHint: z.boolean().optional(),
        openWorldHint: z.boolean().optional(),
      })
      .optional(),
  })

  const promptOverride = z.strictObject({
    name: z.string().min(1).optional(),
    title: z.string().optional(),
    description: z.string().optional(),
  })
  // tools and prompts are filtered and renamed the same way, per backend.
  const perBackend = <O extends z.ZodType>(kind: 'tool' | 'prompt', override: O) =>
    z
      .array(
        z.strictObject({
          backend: z.string(),
          filter: z.array(z.string()).default([]).describe(`if set, only these ${kind}s are exposed`),
          exclude: z.array(z.string()).default([]),
          overrides: z.record(z.string(), override).default({}),
        }),
      )
      .default([])

  const aggregation = z.strictObject({
    conflictResolution: z.enum(['prefix', 'priority', 'manual']).default('prefix'),
    prefixFormat: z
      .string()
      .refine((s) => s.includes('{backend}'), 'must contain {backend}')
      .default('{backend}_'),
    prefixMode: z.enum(['always', 'on-conflict']).default('always'),
    priorityOrder: z.array(z.string()).default([]),
    tools: perBackend('tool', override),
    prompts: perBackend('prompt', promptOverride),
  })

  const server = z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(4483),
    publicUrl: secureUrl
      .refine((s) => !s.endsWith('/'), 'must not end with /')
      .optional()
      .describe('externally visible origin, e.g. https://vmcp.example.com'),
    maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
    keepAliveTimeout: duration('5s').describe(
      "how long an idle client connection stays open (Node's default). Behind a load balancer, set it above the balancer's idle timeout (AWS ALB: 60s, so e.g. 65s), or the balancer may reuse a connection vmcp is closing",
    ),
    allowedOrigins: z.array(z.string()).default([]).describe('browser origins allowed besides loopback and publicUrl'),
    trustedProxies: z
      .array(z.string().refine(isCidrOrAddress, 'must be a CIDR such as 10.0.0.0/8 or an IP address'))
      .default([])
      .describe('reverse proxies whose forwarding header names the client address (rate limits)'),
    forwardedHeader: z
      .enum(['x-forwarded-for', 'forwarded'])
      .default('x-forwarded-for')
      .describe('the one header trusted proxies set: X-Forwarded-For or RFC 7239 Forwarded'),
    requestStateKey: primitives.secretRef
      .refine(
        (s) => !ctx.resolveSecrets || Buffer.byteLength(s.reveal()) >= 32,
        'must be at least 32 bytes (e.g. openssl rand -base64 32)',
      )
      .optional()
      .describe(
        'shared by replicas: they accept each other\'s 2026-07-28 requestState (default: per process)',
      ),
  })

  const operational = z.strictObject({
    sessionTtl: duration('30m'),
    discoveryTimeout: duration('10s'),
    callTimeout: duration('60s'),
    healthCheckInterval: duration('15s'),
    healthCheckTimeout: duration('5s'),
    unhealthyThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe('consecutive health-check timeouts before a backend is marked unhealthy'),
    shutdownTimeout: duration('10s'),
    maxSessions: z.number().int().min(1).default(10_000),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  })

  return z.strictObject({
    $schema: z.string().optional(),
    name: z.string().min(1).default('vmcp'),
    stateDir: primitives.path
      .prefault('.vmcp') // prefault: the default is resolved beside the file too
      .describe('where vmcp keeps state (registry sign-ins; default of authServer.runConfig.dataDir)'),
    server: server.prefault({}),
    backends: z.array(backend).default([]),
    registries: z
      .array(createRegistrySchema(primitives))
      .default([])
      .superRefine((list, c) => {
        const seen = new Set<string>()
        list.forEach((r, i) => {
          if (seen.has(r.name)) c.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate registry name "${r.name}"` })
          seen.add(r.name)
        })
      })
      .describe('private MCP registries whose servers become backends'),
    incomingAuth: incomingAuth.prefault({ type: 'anonymous' }),
    outgoingAuth: z
      .strictObject({
        default: strategy.prefault({ type: 'unauthenticated' }),
        backends: z.record(z.string(), strategy).default({}),
      })
      .prefault({}),
    aggregation: aggregation.prefault({}),
    operational: operational.prefault({}),
    authServer: z
      .strictObject({ runConfig: createAuthServerSchema(createPrimitives(ctx)) })
      .optional()
      .describe('Mode B: vmcp is also the OAuth 2.1 authorization server for its clients'),
  })
}

export type ConfigSchema = ReturnType<typeof createConfigSchema>
/** The validated configuration, defaults applied, durations in ms, secrets as `Secret`. */
export type VmcpConfig = z.output<ConfigSchema>
export type BackendConfig = VmcpConfig['backends'][number]
export type HttpBackendConfig = Extract<BackendConfig, { transport: 'streamable-http' | 'sse' }>
export type StdioBackendConfig = Extract<BackendConfig, { transport: 'stdio' }>
export type IncomingAuthConfig = VmcpConfig['incomingAuth']
export type OidcConfig = Extract<IncomingAuthConfig, { type: 'oidc' }>['oidc']
export type OutgoingStrategyConfig = VmcpConfig['outgoingAuth']['default']
export type AggregationConfig = VmcpConfig['aggregation']
export type ToolOverrideConfig = AggregationConfig['tools'][number]['overrides'][string]
export type PromptOverrideConfig = AggregationConfig['prompts'][number]['overrides'][string]
export type OperationalConfig = VmcpConfig['operational']
export type ServerConfig = VmcpConfig['server']
export type AuthServerConfig = NonNullable<VmcpConfig['authServer']>['runConfig']
export type UpstreamConfig = AuthServerConfig['upstreams'][number]
export type RegistryConfig = VmcpConfig['registries'][number]
export type RegistryAuthConfig = NonNullable<RegistryConfig['auth']>
