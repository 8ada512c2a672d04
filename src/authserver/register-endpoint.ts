import { Hono, type Context } from 'hono'
import { cors } from 'hono/cors'
import type { AuthServerConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'
import { readStreamLimited } from '../net/index.js'
import type { Store } from '../storage/index.js'
import type { ClientRegistration, ClientRegistryService } from './clients.js'
import { authServerPaths } from './metadata.js'
import { answerOAuth, OAuthError, oauthError } from './oauth-error.js'
import { createRateLimiter, type ClientIpResolver } from './rate-limit.js'

export interface RegisterEndpointOptions {
  config: Pick<AuthServerConfig, 'issuer' | 'rateLimits'>
  clients: Pick<ClientRegistryService, 'register'>
  /** For the rate-limit counters. */
  store: Store
  logger: Logger
  /** Default: the socket address under @hono/node-server. */
  clientIp?: ClientIpResolver
  now?: () => number
}

export const MAX_REGISTRATION_BYTES = 64 * 1024

const metadataError = (description: string, status?: number) =>
  new OAuthError('invalid_client_metadata', description, status ? { status } : {})

async function readBody(req: Request, maxBytes: number): Promise<string | undefined> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return undefined
  const buf = await readStreamLimited(req.body, maxBytes)
  return buf?.toString('utf8')
}

/** RFC 7591 §3.2.1 client information response: snake_case, every registered value. */
export function buildClientInformationResponse(
  registration: ClientRegistration,
): Record<string, unknown> {
  const { client, clientSecret } = registration
  const body: Record<string, unknown> = {
    client_id: client.clientId,
    client_id_issued_at: Math.floor(client.createdAt / 1000),
  }
  if (clientSecret) {
    body.client_secret = clientSecret.reveal()
    // RFC 7591 §3.2.1: 0 means the secret does not expire.
    body.client_secret_expires_at = 0
  }
  body.redirect_uris = client.redirectUris
  body.token_endpoint_auth_method = client.tokenEndpointAuthMethod
  body.grant_types = client.grantTypes
  body.response_types = client.responseTypes
  if (client.clientName !== undefined) body.client_name = client.clientName
  if (client.scope !== undefined) body.scope = client.scope
  return body
}

/**
 * `POST ${issuer path}/oauth/register` (mount at '/'): RFC 7591 dynamic client registration.
 * JSON bodies only, at most 64 KiB (413), rate limited per client IP (429 + Retry-After); 201 with
 * the client information response and `Cache-Control: no-store`. Public clients by default; a
 * confidential client gets its secret here, once.
 */
export function createRegisterEndpoint(options: RegisterEndpointOptions): Hono {
  const { config, clients, logger } = options
  const path = authServerPaths(config.issuer).register
  const app = new Hono()

  async function handle(c: Context): Promise<Response> {
    const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
    // RFC 7591 §3.1: the registration request is a JSON document.
    if (type !== 'application/json') throw metadataError('content type must be application/json')
    const text = await readBody(c.req.raw, MAX_REGISTRATION_BYTES)
    if (text === undefined) {
      throw metadataError(`request body exceeds ${MAX_REGISTRATION_BYTES} bytes`, 413)
    }
    let metadata: unknown
    try {
      metadata = JSON.parse(text)
    } catch {
      throw metadataError('request body is not valid JSON')
    }
    const registration = await clients.register(metadata)
    return c.body(JSON.stringify(buildClientInformationResponse(registration)), 201, {
      'content-type': 'application/json',
      // The response may hold a client secret (RFC 7591 §3.2.1 refers to RFC 6749 §5.1).
      'cache-control': 'no-store',
      pragma: 'no-cache',
    })
  }

  app.use(
    path,
    cors({
      origin: '*',
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['Content-Type', 'MCP-Protocol-Version'],
      maxAge: 86400,
    }),
  )
  app.post(
    path,
    createRateLimiter({
      store: options.store,
      name: 'register',
      limit: config.rateLimits.register,
      logger,
      ...(options.now ? { now: options.now } : {}),
      ...(options.clientIp ? { clientIp: options.clientIp } : {}),
    }),
    (c) => answerOAuth('register', logger, () => handle(c)),
  )
  app.all(path, () => oauthError(405, 'invalid_request', 'use POST', { allow: 'POST, OPTIONS' }))
  return app
}
