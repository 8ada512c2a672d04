import { z } from 'zod'
import { parseDuration } from './duration.js'
import type { Primitives } from './schema.js'

// Schemes no native app owns: browsers run them, read local data with them, or they are web URLs.
const DANGEROUS_SCHEMES = new Set(['http', 'https', 'javascript', 'data', 'file', 'blob', 'vbscript', 'about', 'filesystem', 'ws', 'wss', 'ftp', 'mailto', 'tel', 'sms', 'chrome', 'view-source'])

const UPSTREAM_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
// Parameters the authorization request builds itself; an upstream may not override them.
const RESERVED_PARAMS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'code_challenge',
  'code_challenge_method',
  'nonce',
  'resource',
]

/** `authServer.runConfig`: the embedded authorization server (Mode B). */
export function createAuthServerSchema(p: Primitives) {
  const { secureUrl, secretRef } = p
  const bounded = (fallback: string, min: string, max: string) =>
    p.duration(fallback).refine(
      (ms) => ms >= (parseDuration(min) ?? 0) && ms <= (parseDuration(max) ?? Infinity),
      `must be between ${min} and ${max}`,
    )

  // RFC 8414 §2: the issuer is https with no query or fragment; loopback http for local use.
  const issuer = secureUrl.superRefine((s, c) => {
    let u: URL
    try {
      u = new URL(s)
    } catch {
      return
    }
    if (u.search || s.includes('?')) c.addIssue({ code: 'custom', message: 'must not have a query' })
    if (u.hash || s.includes('#')) c.addIssue({ code: 'custom', message: 'must not have a fragment' })
    if (u.username || u.password) c.addIssue({ code: 'custom', message: 'must not contain userinfo' })
    if (s.endsWith('/')) c.addIssue({ code: 'custom', message: 'must not end with /' })
  })

  const additionalParams = z
    .record(z.string(), z.string())
    .default({})
    .superRefine((params, c) => {
      for (const k of Object.keys(params)) {
        if (RESERVED_PARAMS.includes(k)) {
          c.addIssue({ code: 'custom', path: [k], message: `${k} is set by vmcp and cannot be overridden` })
        }
      }
    })

  // RFC 7591: vmcp registers itself at the upstream instead of using a pre-issued client id.
  // Exactly one of discoveryUrl / registrationEndpoint, and dcr excludes clientId: load.ts checks
  // both with a sentence saying what to change.
  const dcr = z
    .strictObject({
      discoveryUrl: secureUrl
        .optional()
        .describe("the authorization server's issuer URL or its metadata URL (RFC 8414)"),
      registrationEndpoint: secureUrl
        .optional()
        .describe('RFC 7591 registration endpoint; then authorizationEndpoint and tokenEndpoint are required'),
      initialAccessToken: secretRef.optional().describe('RFC 7591 §3: sent as Bearer when registering'),
      clientName: z.string().min(1).default('vmcp'),
      softwareId: z.string().min(1).optional(),
      softwareStatement: secretRef.optional().describe('RFC 7591 §2.3 signed software statement (JWT)'),
      tokenEndpointAuthMethod: z
        .enum(['client_secret_basic', 'client_secret_post', 'none'])
        .optional()
        .describe('default: the best the server supports (basic > post > none)'),
      renewBefore: p.duration('24h').describe('RFC 7592: renew an expiring client secret this long before it expires'),
      autoReregister: z.boolean().default(true).describe('register again once when the token endpoint answers invalid_client'),
      preferClientMetadataDocument: z
        .boolean()
        .default(false)
        .describe('use <issuer>/oauth/client-metadata.json as client_id when the server supports it'),
    })
    .optional()
    .describe('dynamic client registration instead of clientId/clientSecret')
  const resource = secureUrl
    .optional()
    .describe('RFC 8707 resource sent in the authorize, token and refresh requests')

  const upstream = z.discriminatedUnion('type', [
    z.strictObject({
      name: z.string().regex(UPSTREAM_NAME, 'must be lowercase [a-z0-9-], starting and ending alphanumeric'),
      type: z.literal('oidc'),
      oidc: z.strictObject({
        issuerUrl: secureUrl,
        clientId: z.string().min(1).optional().describe('required unless dcr is set'),
        clientSecret: secretRef.optional().describe('omit for a public client (PKCE only)'),
        dcr,
        resource,
        scopes: z.array(z.string().min(1)).default(['openid', 'offline_access']),
        additionalAuthorizationParams: additionalParams,
      }),
    }),
    z.strictObject({
      name: z.string().regex(UPSTREAM_NAME, 'must be lowercase [a-z0-9-], starting and ending alphanumeric'),
      type: z.literal('oauth2'),
      oauth2: z.strictObject({
        authorizationEndpoint: secureUrl.optional().describe('required unless dcr.discoveryUrl is set'),
        tokenEndpoint: secureUrl.optional().describe('required unless dcr.discoveryUrl is set'),
        revocationEndpoint: secureUrl
          .optional()
          .describe('RFC 7009 endpoint: vmcp revokes the upstream tokens there when a grant ends'),
        clientId: z.string().min(1).optional().describe('required unless dcr is set'),
        clientSecret: secretRef.optional(),
        dcr,
        resource,
        scopes: z.array(z.string().min(1)).default([]),
        additionalAuthorizationParams: additionalParams,
        userinfo: z
          .strictObject({
            url: secureUrl,
            subjectField: z.string().default('sub'),
            nameField: z.string().default('name'),
            emailField: z.string().default('email'),
          })
          .optional(),
      }),
    }),
  ])

  return z.strictObject({
    issuer,
    signingKeys: z
      .strictObject({
        current: p.path.describe('PEM or JWK file of the signing key (ES256 recommended)'),
        previous: z.array(p.path).default([]).describe('older keys still published in the JWKS'),
      })
      .optional()
      .describe('absent: an ES256 key is generated and kept under dataDir'),
    tokenLifespans: z
      .strictObject({
        accessToken: bounded('1h', '1m', '24h'),
        refreshToken: bounded('7d', '1h', '90d'),
        authCode: bounded('10m', '30s', '10m'),
        refreshMax: bounded('30d', '1h', '365d').describe(
          'total life of a refresh token family, however often it rotates; then sign in again',
        ),
      })
      .prefault({}),
    allowedAudiences: z.array(secureUrl).min(1, 'needs at least one audience (RFC 8707 resource)'),
    scopesSupported: z.array(z.string().min(1)).default(['openid', 'profile', 'email', 'offline_access']),
    upstreams: z.array(upstream).min(1, 'needs at least one upstream identity provider'),
    storage: z
      .strictObject({
        type: z.enum(['memory', 'redis']).default('memory'),
        redis: z
          .strictObject({
            url: z.union([z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), secretRef]),
            keyPrefix: z.string().default('vmcp:'),
          })
          .optional(),
        encryptionKey: secretRef
          .optional()
          .describe('32 bytes, base64 or hex: AES-256-GCM key for records at rest in Redis'),
        maxEntries: z
          .number()
          .int()
          .min(1000)
          .default(100_000)
          .describe('memory storage only: beyond this many records the oldest are evicted'),
      })
      .prefault({}),
    rateLimits: z
      .strictObject({
        register: z.number().int().min(1).default(10).describe('registrations per minute per client IP'),
        token: z.number().int().min(1).default(120).describe('token requests per minute per client IP'),
        authorize: z.number().int().min(1).default(60).describe('authorization requests per minute per client IP'),
        callback: z.number().int().min(1).default(120).describe('upstream callbacks per minute per client IP'),
      })
      .prefault({}),
    pendingAuthorizations: z
      .strictObject({
        maxPerAddress: z
          .number()
          .int()
          .min(1)
          .default(30)
          .describe('sign-ins one client IP may start within one authCode lifespan (429 beyond)'),
        maxTotal: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe('sign-ins all clients together may start within one authCode lifespan (503 beyond)'),
      })
      .prefault({}),
    registration: z
      .strictObject({
        privateUseSchemes: z
          .array(
            z
              .string()
              // RFC 3986 §3.1 scheme syntax, lower case as URL parsing yields it; never a scheme
              // that runs code or reads local data, nor http(s) (they have their own rules).
              .regex(/^[a-z][a-z0-9+.-]*$/, 'must be a lower-case URI scheme name without ":"')
              .refine((s) => !DANGEROUS_SCHEMES.has(s), {
                message: 'is not a private-use scheme a native app can own',
              }),
          )
          .default([])
          .describe(
            'private-use redirect URI schemes accepted besides reverse-DNS ones (RFC 8252 §7.1), e.g. cursor for Cursor',
          ),
      })
      .prefault({}),
    cimd: z
      .strictObject({
        enabled: z.boolean().default(false),
        allowedHosts: z.array(z.string().min(1)).default([]).describe('empty: any public host'),
      })
      .prefault({}),
    consent: z
      .strictObject({
        rememberFor: bounded('30d', '0s', '365d').describe(
          'how long a browser remembers an approval of one client (0s: ask every time)',
        ),
        trustedClients: z
          .array(
            z
              .string()
              .min(1)
              // A CIMD client id is a document its host may change at will (redirect URIs
              // included): it can be approved by users, never trusted by configuration.
              .refine((id) => !/^[a-z][a-z0-9+.-]*:/i.test(id), {
                message: 'must be a registered client id, not a URL (CIMD clients are never trusted)',
              }),
          )
          .default([])
          .describe('first-party client ids that skip the consent page (never DCR/CIMD by default)'),
      })
      .prefault({})
      .describe('the consent page vmcp shows before any upstream sign-in (confused deputy defense)'),
    dataDir: p.path
      .prefault('.vmcp') // prefault: the default is resolved beside the file too
      .describe('where a generated signing key is kept (default: the top-level stateDir)'),
  })
}
