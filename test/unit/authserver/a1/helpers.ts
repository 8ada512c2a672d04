// Shared set-up for the A1 tests (keys, clients, tokens): a test config, a log sink, a store with
// an injectable clock and an outage switch, and the token endpoint wired as the lead will wire it.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Hono } from 'hono'
import {
  createClientRegistry,
  type ClientRegistryService,
} from '../../../../src/authserver/clients.js'
import type { OAuthClient } from '../../../../src/authserver/contracts.js'
import { createGrantStore, type GrantStore } from '../../../../src/authserver/grants.js'
import { loadSigningKeys, type SigningKeys } from '../../../../src/authserver/keys.js'
import { createRegisterEndpoint } from '../../../../src/authserver/register-endpoint.js'
import { createRevocationEndpoint } from '../../../../src/authserver/revocation-endpoint.js'
import { createTokenEndpoint } from '../../../../src/authserver/token-endpoint.js'
import type { AuthServerConfig } from '../../../../src/config/index.js'
import { createLogger, type Logger } from '../../../../src/log/index.js'
import type { FetchLike } from '../../../../src/net/index.js'
import {
  createMemoryStore,
  StorageUnavailableError,
  type Store,
} from '../../../../src/storage/index.js'

export const ISSUER = 'https://vmcp.example'
export const RESOURCE = 'https://vmcp.example/mcp'
export const REDIRECT_URI = 'http://127.0.0.1:33418/callback'

export function testConfig(overrides: Partial<AuthServerConfig> = {}): AuthServerConfig {
  return {
    issuer: ISSUER,
    signingKeys: undefined,
    tokenLifespans: {
      accessToken: 3600_000,
      refreshToken: 7 * 24 * 3600_000,
      authCode: 600_000,
      refreshMax: 30 * 24 * 3600_000,
    },
    allowedAudiences: [RESOURCE],
    scopesSupported: ['openid', 'profile', 'email', 'offline_access'],
    upstreams: [
      {
        name: 'corp',
        type: 'oidc',
        oidc: {
          issuerUrl: 'https://idp.example',
          clientId: 'vmcp',
          scopes: ['openid'],
          additionalAuthorizationParams: {},
        },
      },
    ],
    storage: { type: 'memory', maxEntries: 100_000 },
    rateLimits: { register: 10, token: 120, authorize: 60, callback: 120 },
    pendingAuthorizations: { maxPerAddress: 30, maxTotal: 10_000 },
    registration: { privateUseSchemes: [] },
    cimd: { enabled: false, allowedHosts: [] },
    consent: { rememberFor: 30 * 86_400_000, trustedClients: [] },
    dataDir: '/nonexistent',
    ...overrides,
  }
}

export interface LogSink {
  logger: Logger
  lines: string[]
  /** Parsed log records. */
  records(): Array<Record<string, unknown>>
}

export function logSink(): LogSink {
  const lines: string[] = []
  const logger = createLogger({
    level: 'trace',
    destination: { write: (line: string) => void lines.push(line) },
  })
  return {
    logger,
    lines,
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vmcp-a1-'))
}

/** A memory store whose every call fails with StorageUnavailableError while `down` is set. */
export function switchableStore(inner: Store): Store & { down: boolean } {
  const wrapped = { down: false } as Store & { down: boolean }
  for (const key of [
    'put',
    'putIfAbsent',
    'get',
    'take',
    'delete',
    'addToGroup',
    'deleteGroup',
    'increment',
    'count',
    'ping',
    'close',
  ] as const) {
    ;(wrapped as unknown as Record<string, unknown>)[key] = async (...args: unknown[]) => {
      if (wrapped.down) throw new StorageUnavailableError()
      return (inner[key] as (...a: unknown[]) => Promise<unknown>)(...args)
    }
  }
  Object.defineProperty(wrapped, 'type', { value: inner.type })
  return wrapped
}

export const newVerifier = () => randomBytes(32).toString('base64url')
export const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url')

export interface Harness {
  config: AuthServerConfig
  keys: SigningKeys
  store: Store & { down: boolean }
  clients: ClientRegistryService
  grants: GrantStore
  tokenApp: Hono
  registerApp: Hono
  revokeApp: Hono
  sink: LogSink
  /** tsids passed to onRevoke. */
  revoked: string[]
  clock: { now: number }
  /** Registers a client through the registry. */
  register(meta?: Record<string, unknown>): Promise<{ client: OAuthClient; secret?: string }>
  /** What A2 does at the end of the upstream chain: a code for `client`. */
  issueCode(
    client: OAuthClient,
    options?: {
      verifier?: string
      redirectUri?: string
      scope?: string
      tsid?: string
      nonce?: string
    },
  ): Promise<{ code: string; verifier: string; tsid: string }>
  token(params: Record<string, string>, headers?: Record<string, string>): Promise<Response>
  /** POST /oauth/revoke with a form body. */
  revoke(params: Record<string, string>, headers?: Record<string, string>): Promise<Response>
}

let sharedKeys: Promise<SigningKeys> | undefined

export async function createHarness(
  options: { config?: Partial<AuthServerConfig>; fetch?: FetchLike; sink?: LogSink } = {},
): Promise<Harness> {
  const sink = options.sink ?? logSink()
  const clock = { now: Date.now() }
  const now = () => clock.now
  const config = testConfig({ ...options.config })
  sharedKeys ??= tempDir().then((dir) =>
    loadSigningKeys({ signingKeys: undefined, dataDir: dir }, createLogger({ level: 'silent' })),
  )
  const keys = await sharedKeys
  const store = switchableStore(createMemoryStore({ now }))
  const clients = createClientRegistry({
    store,
    config,
    logger: sink.logger,
    now,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  })
  const revoked: string[] = []
  const grants = createGrantStore({
    store,
    config,
    logger: sink.logger,
    now,
    onRevoke: (tsid) => void revoked.push(tsid),
  })
  const clientIp = () => '203.0.113.7'
  // The revocation endpoint takes the token endpoint's options (RevocationEndpointOptions).
  const endpointOptions = { config, keys, clients, grants, store, logger: sink.logger, clientIp, now }
  const tokenApp = createTokenEndpoint(endpointOptions)
  const revokeApp = createRevocationEndpoint(endpointOptions)
  const registerApp = createRegisterEndpoint({
    config,
    clients,
    store,
    logger: sink.logger,
    clientIp,
    now,
  })

  return {
    config,
    keys,
    store,
    clients,
    grants,
    tokenApp,
    registerApp,
    revokeApp,
    sink,
    revoked,
    clock,
    async register(meta = { redirect_uris: [REDIRECT_URI] }) {
      const { client, clientSecret } = await clients.register(meta)
      return clientSecret ? { client, secret: clientSecret.reveal() } : { client }
    },
    async issueCode(client, o = {}) {
      const verifier = o.verifier ?? newVerifier()
      const tsid = o.tsid ?? randomBytes(16).toString('base64url')
      const code = await grants.issueCode({
        clientId: client.clientId,
        redirectUri: o.redirectUri ?? REDIRECT_URI,
        codeChallenge: s256(verifier),
        scope: o.scope ?? 'openid profile',
        resource: RESOURCE,
        subject: 'user-1',
        tsid,
        name: 'Ada Lovelace',
        email: 'ada@example.com',
        ...(o.nonce !== undefined ? { nonce: o.nonce } : {}),
      })
      return { code, verifier, tsid }
    },
    token: (params, headers = {}) => postForm(tokenApp, '/oauth/token', params, headers),
    revoke: (params, headers = {}) => postForm(revokeApp, '/oauth/revoke', params, headers),
  }
}

function postForm(
  app: Hono,
  path: string,
  params: Record<string, string>,
  headers: Record<string, string>,
): Promise<Response> {
  return Promise.resolve(
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(params).toString(),
    }),
  )
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
