// Test harness for the authorize + callback apps: a tiny Hono app on 127.0.0.1 that mounts them,
// real oidc-provider upstreams, a stub client registry and code issuer, the real memory store and
// sealer, and a wire recorder that collects every secret so the log canary can look for them.
import { createHash, randomBytes } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createAuthorizeApp } from '../../../../src/authserver/authorize-endpoint.js'
import { createCallbackApp } from '../../../../src/authserver/callback-endpoint.js'
import { createBrowserCookies, type BrowserCookies } from '../../../../src/authserver/consent.js'
import type { CodeGrant, OAuthClient } from '../../../../src/authserver/contracts.js'
import {
  createUpstreamTokenStore,
  UPSTREAM_TOKENS_KIND,
  type UpstreamTokenStore,
} from '../../../../src/authserver/upstream-tokens.js'
import { createUpstreamClients, type UpstreamClient } from '../../../../src/authserver/upstreams.js'
import type { AuthServerConfig, UpstreamConfig } from '../../../../src/config/index.js'
import { createLogger, Secret, type Logger } from '../../../../src/log/index.js'
import { createOutboundFetch, type FetchLike } from '../../../../src/net/index.js'
import { createMemoryStore, createSealer, type Sealer, type Store } from '../../../../src/storage/index.js'
import { startIdp, type ConfidentialClient, type Idp, type IdpOptions } from '../../../support/idp.js'

export const CLIENT_ID = 'mcp-client'
export const CLIENT_REDIRECT = 'http://127.0.0.1:9/cb'
export const LOOPBACK_CLIENT_ID = 'loopback-client'
export const LOOPBACK_REDIRECT = 'http://127.0.0.1/callback'

/** Collects every log line (the level is trace) so tests can read or scan them. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'))
      callback()
    },
  })
  return { logger: createLogger({ level: 'trace', destination: sink }), lines }
}

/** The real memory store, remembering which ids were written per kind (for inspection). */
export interface InspectableStore extends Store {
  ids(kind: string): string[]
  /** The raw JSON of every live value of `kind`, joined. */
  dump(kind: string): Promise<string>
  putIfAbsentCalls: number
}

export function createInspectableStore(): InspectableStore {
  const inner = createMemoryStore()
  const written = new Map<string, Set<string>>()
  const note = (kind: string, id: string) => {
    let set = written.get(kind)
    if (!set) written.set(kind, (set = new Set()))
    set.add(id)
  }
  const store: InspectableStore = {
    type: 'memory',
    putIfAbsentCalls: 0,
    async put(kind, id, value, ttl) {
      note(kind, id)
      return inner.put(kind, id, value, ttl)
    },
    async putIfAbsent(kind, id, value, ttl) {
      store.putIfAbsentCalls++
      note(kind, id)
      return inner.putIfAbsent(kind, id, value, ttl)
    },
    get: (kind, id) => inner.get(kind, id),
    take: (kind, id) => inner.take(kind, id),
    delete: (kind, id) => inner.delete(kind, id),
    addToGroup: (group, kind, id, ttl) => inner.addToGroup(group, kind, id, ttl),
    deleteGroup: (group) => inner.deleteGroup(group),
    increment: (kind, id, windowMs) => inner.increment(kind, id, windowMs),
    count: (kind, id) => inner.count(kind, id),
    ping: () => inner.ping(),
    close: () => inner.close(),
    ids(kind) {
      return [...(written.get(kind) ?? [])]
    },
    async dump(kind) {
      const values = await Promise.all(store.ids(kind).map((id) => inner.get(kind, id)))
      return values
        .filter((v) => v !== undefined)
        .map((v) => JSON.stringify(v))
        .join('\n')
    },
  }
  return store
}

/** Outbound fetch that records token-endpoint grants and every secret that crosses the wire. */
export function recordingFetch(base: FetchLike, secrets: Set<string>) {
  const grants: { url: string; grantType: string }[] = []
  const fetch: FetchLike = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const body = init?.body
    if (body instanceof URLSearchParams) {
      const grantType = body.get('grant_type')
      if (grantType) grants.push({ url, grantType })
      for (const k of ['code', 'code_verifier', 'refresh_token', 'client_secret']) {
        const v = body.get(k)
        if (v) secrets.add(v)
      }
    }
    const res = await base(input, init)
    if (grants.at(-1)?.url === url && res.status === 200) {
      const json = (await res.clone().json()) as Record<string, unknown>
      for (const k of ['access_token', 'refresh_token', 'id_token']) {
        if (typeof json[k] === 'string') secrets.add(json[k])
      }
    }
    return res
  }
  return { fetch, grants }
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export type SecondUpstream =
  /** IdP 2 configured as a plain OAuth 2.0 upstream (endpoints, no discovery, no identity). */
  | 'oauth2'
  /** IdP 1 again, as a second oidc upstream that logs in as bob: a continuity failure. */
  | 'oidc-same-issuer-bob'

export interface ChainOptions {
  second?: SecondUpstream
  logger?: Logger
  /** Options of the first IdP (corp). */
  idp1?: IdpOptions
  /** `consent.trustedClients` (default none). */
  trustedClients?: string[]
  /** `consent.rememberFor` in ms (default 30 days). */
  rememberForMs?: number
  /** The issuer's scheme as configured (cookie names and attributes follow it); default http. */
  issuerScheme?: 'http' | 'https'
}

export interface Chain {
  issuer: string
  resource: string
  idp1: Idp
  idp2: Idp
  client1: ConfidentialClient
  client2: ConfidentialClient
  upstreams: UpstreamClient[]
  upstreamConfigs: UpstreamConfig[]
  tokenStore: UpstreamTokenStore
  store: InspectableStore
  sealer: Sealer
  cookies: BrowserCookies
  logger: Logger
  /** Every CodeGrant handed to the stub CodeIssuer. */
  grants: Omit<CodeGrant, 'issuedAt'>[]
  /** Token-endpoint requests vmcp made upstream. */
  wire: { url: string; grantType: string }[]
  /** Every secret seen: upstream codes, verifiers, tokens, client secrets, states, nonces, vmcp codes. */
  secrets: Set<string>
  /** Every /oauth/callback URL that reached the app, in order. */
  callbacks: URL[]
  clients: Map<string, OAuthClient>
  fetch: FetchLike
  config: AuthServerConfig
  authorizeUrl(params?: Record<string, string | undefined>): URL
  /** Opens the sealed row of one upstream for `tsid` (test-only peek at the at-rest format). */
  peek(tsid: string, upstream: string): Promise<Record<string, unknown> | undefined>
  /** Rewrites the stored row so its access token expired a second ago. */
  expire(tsid: string, upstream: string): Promise<void>
  /** A second token store on the same Store and clients: another replica. */
  replica(): UpstreamTokenStore
  close(): Promise<void>
}

/** A public code-flow client as the registry would hold it. */
export const baseClient = (
  clientId: string,
  redirectUris: string[],
  extra: Partial<OAuthClient> = {},
): OAuthClient => ({
  clientId,
  tokenEndpointAuthMethod: 'none',
  redirectUris,
  grantTypes: ['authorization_code', 'refresh_token'],
  responseTypes: ['code'],
  createdAt: Date.now(),
  ...extra,
})

export async function startChain(options: ChainOptions = {}): Promise<Chain> {
  const second = options.second ?? 'oauth2'
  const logger = options.logger ?? createLogger({ level: 'silent' })

  // The app must know its own URL before the upstreams are registered; handler set afterwards.
  let handler: ((req: Request) => Response | Promise<Response>) | undefined
  let server!: Server
  const info = await new Promise<AddressInfo>((resolve) => {
    server = serve(
      {
        fetch: (req) => (handler ? handler(req) : new Response('starting', { status: 503 })),
        hostname: '127.0.0.1',
        port: 0,
      },
      (i) => resolve(i),
    ) as Server
  })
  const issuer = `http://127.0.0.1:${info.port}`
  const callbackUrl = `${issuer}/oauth/callback`
  const resource = `${issuer}/mcp`

  const idp1 = await startIdp(options.idp1)
  const idp2 = await startIdp({ user: 'alice-at-idp2' })
  const client1 = await idp1.registerConfidentialClient({ redirect_uris: [callbackUrl] })
  const client2 =
    second === 'oauth2'
      ? await idp2.registerConfidentialClient({ redirect_uris: [callbackUrl] })
      : await idp1.registerConfidentialClient({ redirect_uris: [callbackUrl] })

  const upstreamConfigs: UpstreamConfig[] = [
    {
      name: 'corp',
      type: 'oidc',
      oidc: {
        issuerUrl: idp1.issuer,
        clientId: client1.client_id,
        clientSecret: new Secret(client1.client_secret),
        scopes: ['openid', 'offline_access', 'profile', 'email'],
        additionalAuthorizationParams: {},
      },
    },
    second === 'oauth2'
      ? {
          name: 'second',
          type: 'oauth2',
          oauth2: {
            authorizationEndpoint: idp2.metadata.authorization_endpoint,
            tokenEndpoint: idp2.metadata.token_endpoint,
            clientId: client2.client_id,
            clientSecret: new Secret(client2.client_secret),
            scopes: ['mcp'],
            additionalAuthorizationParams: {},
          },
        }
      : {
          name: 'second',
          type: 'oidc',
          oidc: {
            issuerUrl: idp1.issuer,
            clientId: client2.client_id,
            clientSecret: new Secret(client2.client_secret),
            scopes: ['openid'],
            // The headless IdP logs in whoever login_hint names (when there is no session).
            additionalAuthorizationParams: { login_hint: 'bob' },
          },
        },
  ]

  const secrets = new Set<string>([client1.client_secret, client2.client_secret])
  const { fetch, grants: wire } = recordingFetch(createOutboundFetch(), secrets)
  const upstreams = createUpstreamClients(upstreamConfigs, { fetch, logger, callbackUrl })
  const store = createInspectableStore()
  const sealer = createSealer(randomBytes(32))
  const makeTokenStore = () =>
    createUpstreamTokenStore({
      store,
      sealer,
      upstreams,
      logger,
      lockPollMs: 20,
    })
  const tokenStore = makeTokenStore()

  const config = {
    issuer,
    allowedAudiences: [resource],
    scopesSupported: ['openid', 'profile', 'email', 'offline_access'],
    tokenLifespans: { accessToken: 3_600_000, refreshToken: 7 * 86_400_000, authCode: 600_000, refreshMax: 30 * 86_400_000 },
    upstreams: upstreamConfigs,
    consent: {
      rememberFor: options.rememberForMs ?? 30 * 86_400_000,
      trustedClients: options.trustedClients ?? [],
    },
  } as AuthServerConfig
  const cookies = createBrowserCookies({
    // Cookie names and attributes follow the configured scheme; the test server is plain http.
    issuer: options.issuerScheme === 'https' ? issuer.replace(/^http:/, 'https:') : issuer,
    sealer,
    rememberForMs: config.consent.rememberFor,
  })

  const clients = new Map<string, OAuthClient>([
    [CLIENT_ID, baseClient(CLIENT_ID, [CLIENT_REDIRECT])],
    [LOOPBACK_CLIENT_ID, baseClient(LOOPBACK_CLIENT_ID, [LOOPBACK_REDIRECT])],
  ])
  const grants: Omit<CodeGrant, 'issuedAt'>[] = []
  const callbacks: URL[] = []

  const app = new Hono()
  // Records what crosses the browser side: callback parameters and every redirect's parameters.
  app.use('*', async (c, next) => {
    const url = new URL(c.req.url)
    if (url.pathname === '/oauth/callback') {
      callbacks.push(url)
      for (const k of ['code', 'state']) {
        const v = url.searchParams.get(k)
        if (v) secrets.add(v)
      }
    }
    await next()
    const location = c.res.headers.get('location')
    if (location) {
      const to = new URL(location)
      for (const k of ['state', 'nonce', 'code']) {
        const v = to.searchParams.get(k)
        // The client's own state is not ours; ours are 43-character base64url strings.
        if (v && (k !== 'state' || v.length >= 40)) secrets.add(v)
      }
    }
  })
  app.route(
    '/',
    createAuthorizeApp({
      config,
      registry: { getClient: async (id) => clients.get(id) },
      upstreams,
      store,
      cookies,
      logger,
    }),
  )
  app.route(
    '/',
    createCallbackApp({
      config,
      upstreams,
      store,
      tokens: tokenStore,
      codeIssuer: {
        async issueCode(grant) {
          grants.push(grant)
          const code = `vmcp-code-${randomBytes(16).toString('base64url')}`
          secrets.add(code)
          return code
        },
      },
      cookies,
      logger,
    }),
  )
  handler = (req) => app.fetch(req)

  return {
    issuer,
    resource,
    idp1,
    idp2,
    client1,
    client2,
    upstreams,
    upstreamConfigs,
    tokenStore,
    store,
    sealer,
    cookies,
    logger,
    grants,
    wire,
    secrets,
    callbacks,
    clients,
    fetch,
    config,
    authorizeUrl(params = {}) {
      const url = new URL(`${issuer}/oauth/authorize`)
      const { challenge } = pkcePair()
      const all: Record<string, string | undefined> = {
        response_type: 'code',
        client_id: CLIENT_ID,
        redirect_uri: CLIENT_REDIRECT,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        scope: 'openid profile',
        state: 'client-state-123',
        ...params,
      }
      for (const [k, v] of Object.entries(all)) if (v !== undefined) url.searchParams.set(k, v)
      return url
    },
    async peek(tsid, upstream) {
      const row = await store.get<{ sealed: string }>(UPSTREAM_TOKENS_KIND, `${tsid}:${upstream}`)
      return row ? (JSON.parse(sealer.open(row.sealed)) as Record<string, unknown>) : undefined
    },
    async expire(tsid, upstream) {
      const id = `${tsid}:${upstream}`
      const row = await store.get<{ sealed: string; sessionExpiresAt: number }>(
        UPSTREAM_TOKENS_KIND,
        id,
      )
      if (!row) throw new Error(`no stored tokens for ${upstream}`)
      const tokens = {
        ...(JSON.parse(sealer.open(row.sealed)) as object),
        expiresAt: Date.now() - 1000,
      }
      const sealed = sealer.seal(JSON.stringify(tokens))
      await store.put(
        UPSTREAM_TOKENS_KIND,
        id,
        { ...row, sealed },
        row.sessionExpiresAt - Date.now(),
      )
    },
    replica: makeTokenStore,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await Promise.all([idp1.close(), idp2.close()])
      await store.close()
    },
  }
}
