// Real upstream IdP for tests: oidc-provider 9 in-process on http://127.0.0.1:<random port>
// (path-less issuer), headless (auto-login + auto-consent), PKCE required, refresh-token rotation,
// DCR + RFC 7592, introspection, revocation, client_credentials, RFC 8707 resource indicators
// issuing JWT access tokens (typ at+jwt, ES256, aud = resource; opaque for `opaqueClients`) and
// an RFC 8693 token-exchange grant.
// Recipe: /work/shared/reference/real-peers.md §3.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  SignJWT,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose'
import { Provider, errors, type KoaContextWithOIDC } from 'oidc-provider'
import MemoryAdapter, { type MemoryStore } from 'oidc-provider/lib/adapters/memory_adapter.js'
import { basicAuth, followRedirectsWithCookies, postForm, type JsonResponse } from './http.js'

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token'
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt'
/** Redirect URI used by the helpers' clients; nothing listens there, the flow stops at the 303. */
export const DEFAULT_REDIRECT_URI = 'http://127.0.0.1:9/callback'
export const BASE_SCOPES = ['openid', 'offline_access', 'email', 'profile', 'mcp'] as const

export interface IdpOptions {
  /** Account logged in by the headless interaction (default 'alice'; see also `login_hint`). */
  user?: string
  /** Access token lifetime in seconds (JWT, opaque, client_credentials, exchanged). Default 600. */
  accessTokenTtl?: number
  /** client_secret_expires_at = now + secretTtl on DCR / RFC 7592 PUT. Default 0 (never). */
  secretTtl?: number
  /**
   * Default true: an authorization without `resource` yields an opaque (introspectable) access
   * token. false: such requests get a JWT for `defaultResource`.
   */
  opaqueWithoutResource?: boolean
  /** Audience used when `opaqueWithoutResource` is false. Default `${issuer}/resource`. */
  defaultResource?: string
  /** Scopes added to `openid offline_access email profile mcp` (also grantable per resource). */
  extraScopes?: string[]
  /** Listen port (default 0 = random). */
  port?: number
  /**
   * Default false: any client that authenticates with a secret may use token exchange. true: only
   * clients whose registered grant_types include the token-exchange grant type.
   */
  strictTokenExchangeGrant?: boolean
  /** `email_verified` of every account (default true). */
  emailVerified?: boolean
  /**
   * Default false (OIDC Core §5.4, oidc-provider's conformIdTokenClaims): with an access token,
   * scope claims (email, profile) come only from UserInfo. true: the ID token carries them too.
   */
  scopeClaimsInIdToken?: boolean
}

/** RFC 8414 metadata as served by oidc-provider (all of these are present with this config). */
export interface AuthorizationServerMetadata {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  registration_endpoint: string
  jwks_uri: string
  introspection_endpoint: string
  revocation_endpoint: string
  userinfo_endpoint: string
  grant_types_supported: string[]
  scopes_supported: string[]
  code_challenge_methods_supported: string[]
  token_endpoint_auth_methods_supported: string[]
  [key: string]: unknown
}

export interface ClientMetadata {
  redirect_uris?: string[]
  grant_types?: string[]
  response_types?: string[]
  token_endpoint_auth_method?: string
  client_name?: string
  scope?: string
  [key: string]: unknown
}

export interface RegisteredClient extends ClientMetadata {
  client_id: string
  client_secret?: string
  client_secret_expires_at?: number
  client_id_issued_at?: number
  registration_access_token?: string
  registration_client_uri?: string
}

export type ConfidentialClient = RegisteredClient & { client_secret: string }

export interface TokenSet {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token?: string
  id_token?: string
  scope?: string
}

export interface GetAccessTokenOptions {
  /** RFC 8707 resource: with it the AT is a JWT for that audience; without it, opaque. */
  resource?: string
  /** Default 'openid offline_access mcp'. */
  scope?: string
  /** Use this (registered) client instead of registering a new one. */
  client?: Pick<RegisteredClient, 'client_id'> & Partial<RegisteredClient>
  /** Shorthand for `client: { client_id: clientId, client_secret: clientSecret }`. */
  clientId?: string
  clientSecret?: string
  /** When registering a new client: confidential (client_secret_basic) instead of public. */
  confidential?: boolean
  /** Default: the client's first redirect URI, else DEFAULT_REDIRECT_URI. */
  redirectUri?: string
  /** Log in as this account (sent as `login_hint`) instead of the IdP's current user. */
  user?: string
  /** OIDC Core §3.1.2.1 `nonce`, echoed in the ID token. */
  nonce?: string
}

export type AccessTokenResult = TokenSet & { client: RegisteredClient }

export interface ExchangeTokenOptions {
  subjectToken: string | undefined
  subjectTokenType?: string
  audience?: string | string[]
  resource?: string | string[]
  scope?: string
  requestedTokenType?: string
  /** Authenticating client (default: an internal confidential client registered on first use). */
  client?: Pick<RegisteredClient, 'client_id'> & Partial<RegisteredClient>
  /** 'client_secret_basic' (default when the client has a secret) or 'client_secret_post'. */
  authMethod?: 'client_secret_basic' | 'client_secret_post' | 'none'
}

export interface TokenExchangeResponse {
  access_token?: string
  issued_token_type?: string
  token_type?: string
  expires_in?: number
  scope?: string
  error?: string
  error_description?: string
}

export interface ExchangeRecord {
  clientId: string
  /** The issued token's `aud`. */
  audience: string | string[]
  /** The issued token's scope ('' when none). */
  scope: string
  subjectSub: string
}

export interface IntrospectionResponse {
  active: boolean
  sub?: string
  client_id?: string
  scope?: string
  aud?: string | string[]
  exp?: number
  iat?: number
  iss?: string
  token_type?: string
  [key: string]: unknown
}

export interface IdpSigningKey {
  kid: string
  alg: 'ES256'
  privateKey: CryptoKey
  publicKey: CryptoKey
  /** Private JWK (with kid/alg/use) as loaded into oidc-provider. */
  privateJwk: JWK
  publicJwk: JWK
}

export interface MintOptions {
  /** Seconds from now until `exp` (negative = already expired). Default: accessTokenTtl. */
  expiresIn?: number
  /** Protected header overrides (default { alg: 'ES256', typ: 'at+jwt', kid }). */
  header?: Record<string, unknown>
}

export interface Idp {
  readonly issuer: string
  readonly metadata: AuthorizationServerMetadata
  readonly signingKey: IdpSigningKey
  /** Every successful token exchange, in order. Tests may reset it with `length = 0`. */
  readonly exchanges: ExchangeRecord[]
  /** The underlying oidc-provider instance (escape hatch). */
  readonly provider: Provider
  /** Account used by the headless login when no `login_hint` is sent. */
  user: string
  /**
   * Client ids whose resource-bound access tokens are opaque instead of JWT (introspection then
   * reports `aud` = the resource). Tests add to it after registering a client.
   */
  readonly opaqueClients: Set<string>
  /** jose verify options matching this IdP's access tokens (issuer + typ). */
  verifyOptions(audience?: string): JWTVerifyOptions
  /** Verifies a JWT access token issued (or minted) by this IdP with its public key. */
  verifyAccessToken(token: string, audience?: string): Promise<JWTPayload>
  /** RFC 7591 registration over HTTP; throws unless 201. Defaults redirect_uris to the default. */
  registerClient(meta?: ClientMetadata): Promise<RegisteredClient>
  /**
   * Confidential client_secret_basic client allowed to: authorization_code, refresh_token,
   * client_credentials, token exchange; and (policy) to introspect/revoke any client's tokens.
   */
  registerConfidentialClient(meta?: ClientMetadata): Promise<ConfidentialClient>
  /** Full headless code + PKCE flow over real HTTP (cookie jar + manual redirects). */
  getAccessToken(options?: GetAccessTokenOptions): Promise<AccessTokenResult>
  /** refresh_token grant (rotation: the answer carries a new refresh token). */
  refresh(
    client: Pick<RegisteredClient, 'client_id'> & Partial<RegisteredClient>,
    refreshToken: string,
    resource?: string,
  ): Promise<JsonResponse<TokenSet & { error?: string }>>
  /** client_credentials grant (JWT when `resource` is given). */
  clientCredentials(options?: {
    client?: ConfidentialClient
    resource?: string
    scope?: string
  }): Promise<JsonResponse<TokenSet & { error?: string }>>
  /** RFC 7662 introspection (default caller: an internal confidential client). */
  introspect(token: string, client?: ConfidentialClient): Promise<IntrospectionResponse>
  /** RFC 7009 revocation; resolves with the HTTP status. */
  revoke(token: string, client?: ConfidentialClient): Promise<number>
  /** RFC 8693 token exchange over HTTP; returns status + body (errors are not thrown). */
  exchangeToken(options: ExchangeTokenOptions): Promise<JsonResponse<TokenExchangeResponse>>
  /**
   * Signs an access-token-shaped JWT with the IdP key. Defaults: iss, sub = user, iat, exp,
   * jti, scope 'mcp', client_id 'minted'. A claim set to `undefined` is removed.
   */
  mintAccessToken(claims?: Record<string, unknown>, options?: MintOptions): Promise<string>
  close(): Promise<void>
}

/** Unbounded TTL map for oidc-provider's MemoryAdapter (one per IdP instance). */
class TtlStore implements MemoryStore {
  readonly #map = new Map<string, { value: unknown; expiry: number | undefined }>()

  get(key: string): any {
    const entry = this.#map.get(key)
    if (!entry) return undefined
    if (entry.expiry !== undefined && entry.expiry <= Date.now()) {
      this.#map.delete(key)
      return undefined
    }
    return entry.value
  }

  set(key: string, value: unknown, options: { maxAge?: number } = {}): this {
    const { maxAge } = options
    const finite = typeof maxAge === 'number' && Number.isFinite(maxAge)
    this.#map.set(key, { value, expiry: finite ? Date.now() + maxAge : undefined })
    return this
  }

  delete(key: string): boolean {
    return this.#map.delete(key)
  }
}

type ClientRef = Pick<RegisteredClient, 'client_id'> & Partial<RegisteredClient>

const now = () => Math.floor(Date.now() / 1000)

const asList = (v: unknown): string[] =>
  (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string' && x !== '')

function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  const challenge = createHash('sha256').update(verifier).digest('base64url')
  return { verifier, challenge }
}

/** Client authentication as headers/body params for a token-endpoint-style request. */
function clientAuth(
  client: ClientRef,
  method?: 'client_secret_basic' | 'client_secret_post' | 'none',
): { headers: Record<string, string>; params: Record<string, string> } {
  const m =
    method ??
    (client.client_secret
      ? client.token_endpoint_auth_method === 'client_secret_post'
        ? 'client_secret_post'
        : 'client_secret_basic'
      : 'none')
  if (m === 'none' || !client.client_secret) {
    return { headers: {}, params: { client_id: client.client_id } }
  }
  if (m === 'client_secret_post') {
    return {
      headers: {},
      params: { client_id: client.client_id, client_secret: client.client_secret },
    }
  }
  return {
    headers: { authorization: basicAuth(client.client_id, client.client_secret) },
    params: {},
  }
}

/** Starts the IdP. Resolves once it is listening and its metadata has been fetched. */
// Revocation and introspection: any authenticated (non-public) client may act on any token,
// public clients only on their own (oidc-provider's default, minus its "should change" warning).
const ownOrConfidential = async (
  _ctx: unknown,
  client: { clientId: string; clientAuthMethod: string },
  token: { clientId: string },
) => token.clientId === client.clientId || client.clientAuthMethod !== 'none'

export async function startIdp(options: IdpOptions = {}): Promise<Idp> {
  const accessTokenTtl = options.accessTokenTtl ?? 600
  const secretTtl = options.secretTtl ?? 0
  const opaqueWithoutResource = options.opaqueWithoutResource ?? true
  const extraScopes = options.extraScopes ?? []
  const allScopes = [...new Set<string>([...BASE_SCOPES, ...extraScopes])]
  const resourceScopes = [...new Set<string>(['mcp', ...extraScopes])]
  const state = { user: options.user ?? 'alice' }
  const exchanges: ExchangeRecord[] = []
  const opaqueClients = new Set<string>()

  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const defaultResource = options.defaultResource ?? `${issuer}/resource`

  const kid = `idp-${randomBytes(4).toString('hex')}`
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' }
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  const signingKey: IdpSigningKey = {
    kid,
    alg: 'ES256',
    privateKey,
    publicKey,
    privateJwk,
    publicJwk,
  }

  const store = new TtlStore()
  const provider = new Provider(issuer, {
    adapter: (model: string) => new MemoryAdapter(model, store, 0),
    jwks: { keys: [privateJwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: allScopes,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({
        sub,
        email: `${sub}@example.test`,
        email_verified: options.emailVerified ?? true,
        name: sub,
        preferred_username: sub,
      }),
    }),
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    responseTypes: ['code'],
    conformIdTokenClaims: !(options.scopeClaimsInIdToken ?? false),
    clockTolerance: 0, // default 15 s would mask short secretTtl values
    rotateRefreshToken: true,
    pkce: { required: () => true },
    // Default needs offline_access + consent; here: whenever the client may use refresh_token
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    renderError: async (ctx: KoaContextWithOIDC, out: Record<string, unknown>) => {
      ctx.type = 'json'
      ctx.body = out
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true }, // open DCR (no initial access token)
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      clientCredentials: { enabled: true },
      revocation: {
        enabled: true,
        allowedPolicy: ownOrConfidential,
      },
      introspection: {
        enabled: true,
        allowedPolicy: ownOrConfidential,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) =>
          oneOf ? oneOf[0] : opaqueWithoutResource ? undefined : defaultResource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (
          _ctx: unknown,
          resource: string,
          client: { clientId: string },
        ) => ({
          scope: resourceScopes.join(' '),
          audience: resource,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: opaqueClients.has(client.clientId) ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
    // Auto-consent: every requested scope and resource is granted (and added to an existing grant)
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx
      const clientId: string = oidc.client.clientId
      const grantId: string | undefined =
        oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(clientId)
      const grant =
        (grantId ? await oidc.provider.Grant.find(grantId) : undefined) ??
        new oidc.provider.Grant({ clientId, accountId: oidc.session.accountId })
      const requested = asList(String(oidc.params.scope ?? 'openid').split(' '))
      grant.addOIDCScope(requested.join(' '))
      const forResource = requested.filter((s) => resourceScopes.includes(s))
      for (const r of asList(oidc.params.resource)) {
        grant.addResourceScope(r, (forResource.length ? forResource : ['mcp']).join(' '))
      }
      await grant.save()
      return grant
    },
  })

  if (!options.strictTokenExchangeGrant) {
    // Let every client pass oidc-provider's "grant type allowed for this client" check for token
    // exchange; the handler itself then insists on a secret-authenticated client.
    const proto = provider.Client.prototype as {
      grantTypeAllowed(this: unknown, t: string): boolean
    }
    const original = proto.grantTypeAllowed
    proto.grantTypeAllowed = function (this: unknown, type: string) {
      return type === TOKEN_EXCHANGE_GRANT || original.call(this, type)
    }
  }

  // Default scope for scope-less authorization requests (else access_denied, "no scope was
  // granted")
  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth' && ctx.method === 'GET' && !ctx.query.scope) {
      ctx.query = { ...ctx.query, scope: 'mcp' }
    }
    await next()
  })

  // client_secret_expires_at (oidc-provider hard-codes 0) + secret rotation on RFC 7592 PUT
  provider.use(async (ctx, next) => {
    await next()
    const created = ctx.method === 'POST' && ctx.path === '/reg' && ctx.status === 201
    const updated = ctx.method === 'PUT' && ctx.path.startsWith('/reg/') && ctx.status === 200
    const body = ctx.body as Record<string, unknown> | undefined
    if (!(created || updated) || !body?.client_secret) return
    const { registration_access_token, registration_client_uri, ...meta } = body
    if (updated) meta.client_secret = randomBytes(32).toString('base64url')
    meta.client_secret_expires_at = secretTtl ? now() + secretTtl : 0
    await provider.Client.adapter.upsert(meta.client_id as string, meta)
    ctx.body = { ...meta, registration_access_token, registration_client_uri }
  })

  registerTokenExchange(provider, {
    issuer,
    signingKey,
    accessTokenTtl,
    allScopes,
    exchanges,
  })

  const callback = provider.callback()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/interaction/')) {
      callback(req, res)
      return
    }
    void (async () => {
      try {
        // Headless: no UI. Login as login_hint ?? current user; consent is supplied by the grant
        const details = await provider.interactionDetails(req, res)
        const hint = details.params.login_hint
        const accountId = typeof hint === 'string' && hint ? hint : state.user
        const result =
          details.prompt.name === 'login' ? { login: { accountId } } : { consent: {} }
        await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false })
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err))
      }
    })()
  })

  const metaRes = await fetch(`${issuer}/.well-known/oauth-authorization-server`)
  if (!metaRes.ok) throw new Error(`IdP metadata: HTTP ${metaRes.status}`)
  const metadata = (await metaRes.json()) as AuthorizationServerMetadata

  let internalClient: Promise<ConfidentialClient> | undefined

  const verifyOptions = (audience?: string): JWTVerifyOptions => ({
    issuer,
    typ: 'at+jwt',
    algorithms: ['ES256'],
    ...(audience === undefined ? {} : { audience }),
  })

  const idp: Idp = {
    issuer,
    metadata,
    signingKey,
    exchanges,
    provider,
    opaqueClients,
    get user() {
      return state.user
    },
    set user(value: string) {
      state.user = value
    },
    verifyOptions,

    async verifyAccessToken(token, audience) {
      return (await jwtVerify(token, publicKey, verifyOptions(audience))).payload
    },

    async registerClient(meta = {}) {
      const res = await fetch(metadata.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: [DEFAULT_REDIRECT_URI], ...meta }),
      })
      const body = (await res.json()) as RegisteredClient & { error?: string }
      if (res.status !== 201) {
        throw new Error(`DCR failed: HTTP ${res.status} ${JSON.stringify(body)}`)
      }
      return body
    },

    async registerConfidentialClient(meta = {}) {
      const client = await idp.registerClient({
        client_name: 'confidential-test-client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [
          'authorization_code',
          'refresh_token',
          'client_credentials',
          TOKEN_EXCHANGE_GRANT,
        ],
        response_types: ['code'],
        ...meta,
      })
      if (!client.client_secret) throw new Error('confidential client registered without a secret')
      return client as ConfidentialClient
    },

    async getAccessToken(opts = {}) {
      let client: RegisteredClient
      if (opts.client) client = { ...opts.client }
      else if (opts.clientId) {
        client = {
          client_id: opts.clientId,
          ...(opts.clientSecret ? { client_secret: opts.clientSecret } : {}),
        }
      } else if (opts.confidential) client = await idp.registerConfidentialClient()
      else client = await idp.registerClient({ token_endpoint_auth_method: 'none' })

      const redirectUri = opts.redirectUri ?? client.redirect_uris?.[0] ?? DEFAULT_REDIRECT_URI
      const { verifier, challenge } = pkcePair()
      const authz = new URL(metadata.authorization_endpoint)
      const params: Record<string, string | undefined> = {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: redirectUri,
        scope: opts.scope ?? 'openid offline_access mcp',
        state: randomBytes(8).toString('hex'),
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: opts.resource,
        login_hint: opts.user,
        nonce: opts.nonce,
      }
      for (const [k, v] of Object.entries(params)) if (v !== undefined) authz.searchParams.set(k, v)

      const cb = await followRedirectsWithCookies(authz, redirectUri)
      const error = cb.searchParams.get('error')
      if (error) {
        const description = cb.searchParams.get('error_description')
        throw new Error(`authorization failed: ${error} ${description}`)
      }
      if (cb.searchParams.get('state') !== params.state) throw new Error('state mismatch')
      const code = cb.searchParams.get('code')
      if (!code) throw new Error(`no code in ${cb.href}`)

      const auth = clientAuth(client)
      const res = await postForm<TokenSet & { error?: string; error_description?: string }>(
        metadata.token_endpoint,
        {
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirectUri,
          code_verifier: verifier,
          resource: opts.resource,
          ...auth.params,
        },
        auth.headers,
      )
      if (res.status !== 200 || !res.body.access_token) {
        throw new Error(`code exchange failed: HTTP ${res.status} ${JSON.stringify(res.body)}`)
      }
      return { ...res.body, client }
    },

    async refresh(client, refreshToken, resource) {
      const auth = clientAuth(client)
      return postForm(
        metadata.token_endpoint,
        { grant_type: 'refresh_token', refresh_token: refreshToken, resource, ...auth.params },
        auth.headers,
      )
    },

    async clientCredentials(opts = {}) {
      const client = opts.client ?? (await internal())
      const auth = clientAuth(client)
      return postForm(
        metadata.token_endpoint,
        {
          grant_type: 'client_credentials',
          resource: opts.resource,
          scope: opts.scope,
          ...auth.params,
        },
        auth.headers,
      )
    },

    async introspect(token, client) {
      const auth = clientAuth(client ?? (await internal()))
      const res = await postForm<IntrospectionResponse>(
        metadata.introspection_endpoint,
        { token, ...auth.params },
        auth.headers,
      )
      if (res.status !== 200) {
        throw new Error(`introspection failed: HTTP ${res.status} ${JSON.stringify(res.body)}`)
      }
      return res.body
    },

    async revoke(token, client) {
      const auth = clientAuth(client ?? (await internal()))
      const body = new URLSearchParams({ token, ...auth.params })
      const res = await fetch(metadata.revocation_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth.headers },
        body,
      })
      await res.body?.cancel()
      return res.status
    },

    async exchangeToken(opts) {
      const client = opts.client ?? (await internal())
      const auth = clientAuth(client, opts.authMethod)
      return postForm<TokenExchangeResponse>(
        metadata.token_endpoint,
        {
          grant_type: TOKEN_EXCHANGE_GRANT,
          subject_token: opts.subjectToken,
          subject_token_type: opts.subjectTokenType ?? TOKEN_TYPE_ACCESS_TOKEN,
          audience: opts.audience,
          resource: opts.resource,
          scope: opts.scope,
          requested_token_type: opts.requestedTokenType,
          ...auth.params,
        },
        auth.headers,
      )
    },

    async mintAccessToken(claims = {}, mint = {}) {
      const iat = now()
      const payload: Record<string, unknown> = {
        iss: issuer,
        sub: state.user,
        iat,
        exp: iat + (mint.expiresIn ?? accessTokenTtl),
        jti: randomUUID(),
        scope: 'mcp',
        client_id: 'minted',
        ...claims,
      }
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k]
      return new SignJWT(payload as JWTPayload)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid, ...mint.header })
        .sign(privateKey)
    },

    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }

  function internal(): Promise<ConfidentialClient> {
    internalClient ??= idp.registerConfidentialClient({ client_name: 'idp-helper-internal' })
    return internalClient
  }

  return idp
}

interface ExchangeContext {
  issuer: string
  signingKey: IdpSigningKey
  accessTokenTtl: number
  allScopes: string[]
  exchanges: ExchangeRecord[]
}

interface Subject {
  sub: string
  jti?: string
  scope?: string
  act?: unknown
}

/** RFC 8693 token exchange as a custom oidc-provider grant type. Issues jose-signed at+jwt ATs. */
function registerTokenExchange(provider: Provider, x: ExchangeContext): void {
  const parameters = [
    'subject_token',
    'subject_token_type',
    'actor_token',
    'actor_token_type',
    'requested_token_type',
    'audience',
    'resource',
    'scope',
  ]
  const acceptedTypes = new Set([TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT])

  const resolveSubject = async (token: string, type: string): Promise<Subject> => {
    let isJwt = false
    try {
      isJwt = !!decodeProtectedHeader(token)
    } catch {
      isJwt = false
    }
    if (isJwt) {
      let payload: JWTPayload
      try {
        ;({ payload } = await jwtVerify(token, x.signingKey.publicKey, {
          issuer: x.issuer,
          algorithms: ['ES256'],
          // ...:jwt accepts any JWT this IdP signed (e.g. an ID token); access_token wants at+jwt
          ...(type === TOKEN_TYPE_ACCESS_TOKEN ? { typ: 'at+jwt' } : {}),
        }))
      } catch (err) {
        throw new errors.CustomOIDCProviderError(
          'invalid_grant',
          `subject_token is invalid: ${(err as Error).message}`,
        )
      }
      if (typeof payload.sub !== 'string' || !payload.sub) {
        throw new errors.CustomOIDCProviderError('invalid_grant', 'subject_token has no sub')
      }
      return {
        sub: payload.sub,
        ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
        ...(typeof payload.scope === 'string' ? { scope: payload.scope } : {}),
        ...(payload.act !== undefined ? { act: payload.act } : {}),
      }
    }
    // Opaque access token issued by this provider
    const at = type === TOKEN_TYPE_ACCESS_TOKEN ? await provider.AccessToken.find(token) : undefined
    if (!at?.isValid || !at.accountId) {
      throw new errors.CustomOIDCProviderError(
        'invalid_grant',
        'subject_token is invalid or expired',
      )
    }
    return { sub: at.accountId, jti: at.jti, ...(at.scope ? { scope: at.scope } : {}) }
  }

  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    async (ctx) => {
      const { client, params } = ctx.oidc as {
        client: { clientId: string; clientAuthMethod: string }
        params: Record<string, unknown>
      }
      if (client.clientAuthMethod === 'none') {
        throw new errors.InvalidClient(
          'token exchange requires an authenticated (confidential) client',
        )
      }
      const subjectToken = params.subject_token
      if (typeof subjectToken !== 'string' || !subjectToken) {
        throw new errors.InvalidRequest('missing required parameter: subject_token')
      }
      const subjectType = params.subject_token_type
      if (typeof subjectType !== 'string' || !subjectType) {
        throw new errors.InvalidRequest('missing required parameter: subject_token_type')
      }
      if (!acceptedTypes.has(subjectType)) {
        throw new errors.InvalidRequest(`unsupported subject_token_type: ${subjectType}`)
      }
      const requestedType = params.requested_token_type
      if (requestedType !== undefined && !acceptedTypes.has(String(requestedType))) {
        throw new errors.InvalidRequest(
          `unsupported requested_token_type: ${String(requestedType)}`,
        )
      }
      const subject = await resolveSubject(subjectToken, subjectType)

      let scope = subject.scope ?? ''
      if (typeof params.scope === 'string') {
        const requested = params.scope.split(' ').filter(Boolean)
        const unknown = requested.filter((s) => !x.allScopes.includes(s))
        if (unknown.length) {
          throw new errors.InvalidScope('requested scope is not allowed', unknown.join(' '))
        }
        scope = requested.join(' ')
      }

      const audiences = [...asList(params.audience), ...asList(params.resource)]
      const aud: string | string[] =
        audiences.length === 0
          ? client.clientId
          : audiences.length === 1
            ? audiences[0]!
            : audiences

      const iat = now()
      const act: Record<string, unknown> = { sub: client.clientId }
      if (subject.act !== undefined) act.act = subject.act
      const claims: JWTPayload = {
        client_id: client.clientId,
        act,
        ...(scope ? { scope } : {}),
        ...(subject.jti ? { exchanged_from: subject.jti } : {}),
      }
      const accessToken = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: x.signingKey.kid })
        .setIssuer(x.issuer)
        .setSubject(subject.sub)
        .setAudience(aud)
        .setIssuedAt(iat)
        .setExpirationTime(iat + x.accessTokenTtl)
        .setJti(randomUUID())
        .sign(x.signingKey.privateKey)

      x.exchanges.push({ clientId: client.clientId, audience: aud, scope, subjectSub: subject.sub })
      ctx.body = {
        access_token: accessToken,
        issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
        token_type: 'Bearer',
        expires_in: x.accessTokenTtl,
        ...(scope ? { scope } : {}),
      }
    },
    parameters,
    ['audience', 'resource'],
  )
}
