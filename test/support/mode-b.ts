import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestBackend, type RunningBackend } from './backends.js'
import { freePort } from './http.js'
import { startIdp, type Idp } from './idp.js'
import { startVmcp, type RunningVmcp } from './vmcp.js'

export interface ModeBStack {
  issuer: string
  corp: Idp
  partner: Idp
  backends: { corp: RunningBackend; partner: RunningBackend }
  gw: RunningVmcp
  /** Stops vmcp and starts it again with the same config (keys, storage, port). */
  restart(): Promise<RunningVmcp>
  close(): Promise<void>
}

export interface ModeBOptions {
  /** A redis:// URL: Redis storage with an encryption key; default memory storage. */
  redisUrl?: string
  level?: 'trace' | 'debug' | 'info'
  tokenLifespans?: Record<string, string>
  /** Upstream access token lifetime (s); under vmcp's 30 s refresh skew every use refreshes. */
  upstreamTokenTtl?: number
  /** A path for the issuer (`/tenant`): `issuer` becomes `http://127.0.0.1:<port>/tenant`. */
  issuerPath?: string
  /** Merged into the `server` section. */
  server?: Record<string, unknown>
  /** Merged into `authServer.runConfig`. */
  runConfig?: Record<string, unknown>
}

export interface ModeBConfigParts {
  port: number
  backends: Record<string, unknown>[]
  /** `outgoingAuth.backends`. */
  outgoing: Record<string, unknown>
  upstreams: Record<string, unknown>[]
  /** Scopes vmcp asks of its own clients (RFC 9728 `scopes_supported`). */
  scopes?: string[]
  /** Prefix of the temporary `dataDir`. */
  dataDirPrefix?: string
  /** Merged last into `authServer.runConfig` (it may replace `dataDir` or `upstreams`). */
  runConfig?: Record<string, unknown>
  /** Merged into the `server` section. */
  server?: Record<string, unknown>
}

/**
 * A Mode B configuration at `http://127.0.0.1:<port>`: vmcp is the issuer, its own `/mcp` the one
 * audience and resource, with the given backends, outgoing strategies and upstreams. The shape
 * every Mode B integration test shares; each test adds only what it is about.
 */
export function modeBConfig(parts: ModeBConfigParts, issuer = `http://127.0.0.1:${parts.port}`) {
  const origin = `http://127.0.0.1:${parts.port}`
  return {
    server: { port: parts.port, ...parts.server },
    backends: parts.backends,
    incomingAuth: {
      type: 'oidc',
      oidc: {
        issuer,
        audience: `${origin}/mcp`,
        resource: `${origin}/mcp`,
        scopes: parts.scopes ?? ['openid', 'offline_access'],
      },
    },
    outgoingAuth: { backends: parts.outgoing },
    authServer: {
      runConfig: {
        issuer,
        allowedAudiences: [`${origin}/mcp`],
        dataDir: mkdtempSync(join(tmpdir(), parts.dataDirPrefix ?? 'vmcp-mode-b-')),
        upstreams: parts.upstreams,
        ...parts.runConfig,
      },
    },
  }
}

/**
 * vmcp in Mode B on a fixed free port with two real oidc-provider upstreams (corp: oidc,
 * partner: oauth2) and two test backends behind upstream_inject.
 */
export async function startModeBStack(options: ModeBOptions = {}): Promise<ModeBStack> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const issuer = `${origin}${options.issuerPath ?? ''}`
  const ttl = options.upstreamTokenTtl ? { accessTokenTtl: options.upstreamTokenTtl } : {}
  const corp = await startIdp(ttl)
  const partner = await startIdp({ user: 'alice-partner', ...ttl })
  const callback = { redirect_uris: [`${issuer}/oauth/callback`] }
  const corpClient = await corp.registerConfidentialClient(callback)
  const partnerClient = await partner.registerConfidentialClient(callback)
  const backends = {
    corp: await startTestBackend(['--name', 'corp-api']),
    partner: await startTestBackend(['--name', 'partner-api']),
  }
  const config = modeBConfig(
    {
      port,
      backends: [
        { name: 'corpapi', transport: 'streamable-http', url: backends.corp.url },
        { name: 'partnerapi', transport: 'streamable-http', url: backends.partner.url },
      ],
      outgoing: {
        corpapi: { type: 'upstream_inject', upstreamInject: { providerName: 'corp' } },
        partnerapi: { type: 'upstream_inject', upstreamInject: { providerName: 'partner' } },
      },
      upstreams: [
        {
          name: 'corp',
          type: 'oidc',
          oidc: {
            issuerUrl: corp.issuer,
            clientId: corpClient.client_id,
            clientSecret: { env: 'CORP_SECRET' },
            scopes: ['openid', 'offline_access', 'email'],
          },
        },
        {
          name: 'partner',
          type: 'oauth2',
          oauth2: {
            authorizationEndpoint: partner.metadata.authorization_endpoint,
            tokenEndpoint: partner.metadata.token_endpoint,
            revocationEndpoint: partner.metadata.revocation_endpoint,
            clientId: partnerClient.client_id,
            clientSecret: { env: 'PARTNER_SECRET' },
            scopes: ['openid', 'offline_access'],
          },
        },
      ],
      ...(options.server ? { server: options.server } : {}),
      runConfig: {
        ...(options.tokenLifespans ? { tokenLifespans: options.tokenLifespans } : {}),
        storage: options.redisUrl
          ? {
              type: 'redis',
              redis: { url: options.redisUrl, keyPrefix: `t${port}:` },
              encryptionKey: { env: 'ENC_KEY' },
            }
          : { type: 'memory' },
        ...options.runConfig,
      },
    },
    issuer,
  )
  const env = {
    CORP_SECRET: corpClient.client_secret,
    PARTNER_SECRET: partnerClient.client_secret,
    ENC_KEY: '7f'.repeat(32),
  }
  const start = () => startVmcp(config, { env, ...(options.level ? { level: options.level } : {}) })
  const stack: ModeBStack = {
    issuer,
    corp,
    partner,
    backends,
    gw: await start(),
    async restart() {
      await stack.gw.close()
      stack.gw = await start()
      return stack.gw
    },
    async close() {
      await stack.gw.close()
      await backends.corp.close()
      await backends.partner.close()
      await corp.close()
      await partner.close()
    },
  }
  return stack
}
