// An in-process upstream identity provider for the Mode B bench: oidc-provider on a random
// loopback port, headless (every interaction logs in `bench-user` and consents to everything),
// with one confidential client (client_secret_basic) whose redirect URI is vmcp's callback.
// Only sign-ins reach it: its access tokens live an hour, so vmcp never refreshes them during a
// bench run.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'

export interface UpstreamIdp {
  issuer: string
  clientId: string
  clientSecret: string
  /** Completed interactions (one per sign-in through this IdP). */
  readonly logins: number
  close(): Promise<void>
}

// oidc-provider ships no types, and test/ has its own ambient shim that the test typecheck
// (which includes bench/) would see twice: these imports go through a non-literal specifier and
// the few members used here are typed locally.
interface OidcContext {
  oidc: {
    client: { clientId: string }
    params: Record<string, unknown>
    session: { accountId: string; grantIdFor(clientId: string): string | undefined }
    result?: { consent?: { grantId?: string } }
    provider: { Grant: GrantClass }
  }
  type: string
  body: unknown
}
interface GrantInstance {
  addOIDCScope(scope: string): void
  save(): Promise<string>
}
interface GrantClass {
  new (init: { clientId: string; accountId: string }): GrantInstance
  find(id: string): Promise<GrantInstance | undefined>
}
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ prompt: { name: string } }>
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>
}
type ProviderClass = new (issuer: string, config: Record<string, unknown>) => ProviderInstance
type AdapterClass = new (model: string, store: TtlStore, clockTolerance: number) => unknown

/** Unbounded TTL map for oidc-provider's MemoryAdapter (its default is a shared 1,000-entry LRU). */
class TtlStore {
  readonly #map = new Map<string, { value: unknown; expiry: number | undefined }>()
  get(key: string): unknown {
    const entry = this.#map.get(key)
    if (!entry) return undefined
    if (entry.expiry !== undefined && entry.expiry <= Date.now()) {
      this.#map.delete(key)
      return undefined
    }
    return entry.value
  }
  set(key: string, value: unknown, options: { maxAge?: number } = {}): this {
    const finite = typeof options.maxAge === 'number' && Number.isFinite(options.maxAge)
    this.#map.set(key, { value, expiry: finite ? Date.now() + options.maxAge! : undefined })
    return this
  }
  delete(key: string): boolean {
    return this.#map.delete(key)
  }
}

const SCOPES = ['openid', 'offline_access', 'email', 'profile']
const USER = 'bench-user'

export async function startUpstreamIdp(options: { redirectUris: string[] }): Promise<UpstreamIdp> {
  const providerModule: string = 'oidc-provider'
  const adapterModule: string = 'oidc-provider/lib/adapters/memory_adapter.js'
  const Provider = ((await import(providerModule)) as { default: ProviderClass }).default
  const MemoryAdapter = ((await import(adapterModule)) as { default: AdapterClass }).default

  const server = createServer()
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  const signingJwk = { ...(await exportJWK(privateKey)), kid: 'bench-idp', alg: 'ES256', use: 'sig' }
  const clientId = 'vmcp-bench'
  const clientSecret = randomBytes(32).toString('base64url')
  const store = new TtlStore()
  let logins = 0

  const provider = new Provider(issuer, {
    adapter: (model: string) => new MemoryAdapter(model, store, 0),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: SCOPES,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@bench.test`, email_verified: true, name: sub }),
    }),
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
      },
    ],
    responseTypes: ['code'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    renderError: async (ctx: OidcContext, out: Record<string, unknown>) => {
      ctx.type = 'json'
      ctx.body = out
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, i: { uid: string }) => `/interaction/${i.uid}` },
    // Auto-consent: every requested scope is granted.
    loadExistingGrant: async (ctx: OidcContext) => {
      const { oidc } = ctx
      const id = oidc.client.clientId
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(id)
      const grant =
        (grantId ? await oidc.provider.Grant.find(grantId) : undefined) ??
        new oidc.provider.Grant({ clientId: id, accountId: oidc.session.accountId })
      grant.addOIDCScope(String(oidc.params.scope ?? 'openid'))
      await grant.save()
      return grant
    },
  })

  const callback = provider.callback()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/interaction/')) return callback(req, res)
    void (async () => {
      try {
        const details = await provider.interactionDetails(req, res)
        const login = details.prompt.name === 'login'
        if (login) logins++
        const result = login ? { login: { accountId: USER } } : { consent: {} }
        await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false })
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err))
      }
    })()
  })

  return {
    issuer,
    clientId,
    clientSecret,
    get logins() {
      return logins
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((ok) => server.close(() => ok()))
    },
  }
}
