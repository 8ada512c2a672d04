import { Hono, type Context } from 'hono'
import { cors } from 'hono/cors'
import type { Logger } from '../log/index.js'
import { readStreamLimited } from '../net/index.js'
import type { Store } from '../storage/index.js'
import { verifyClientSecret } from './clients.js'
import type { ClientRegistry, OAuthClient } from './contracts.js'
import { answerOAuth, OAuthError, oauthError } from './oauth-error.js'
import { createRateLimiter, type ClientIpResolver } from './rate-limit.js'

/**
 * What the token endpoint (RFC 6749 §3.2) and the revocation endpoint (RFC 7009 §2.1) share: a
 * form-encoded POST from an authenticated client, rate limited per client IP, answered with
 * RFC 6749 §5.2 errors.
 */

export const MAX_TOKEN_REQUEST_BYTES = 64 * 1024

type AuthMethod = OAuthClient['tokenEndpointAuthMethod']
export type FormParams = Map<string, string>

const BASIC_CHALLENGE = 'Basic realm="vmcp"'

export const invalidRequest = (description: string) =>
  new OAuthError('invalid_request', description)

async function readBody(req: Request, maxBytes: number): Promise<string | undefined> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (Number.isFinite(declared) && declared > maxBytes) return undefined
  const buf = await readStreamLimited(req.body, maxBytes)
  return buf?.toString('utf8')
}

function parseForm(text: string): FormParams {
  const params: FormParams = new Map()
  for (const [key, value] of new URLSearchParams(text)) {
    // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    if (value === '') continue
    if (params.has(key)) {
      // RFC 8707 §2: several resources are legal, but one grant has one audience here.
      if (key === 'resource') {
        throw new OAuthError('invalid_target', 'multiple resource parameters are not supported')
      }
      // RFC 6749 §3.2: parameters must not be included more than once.
      throw invalidRequest(
        /^[a-z_]{1,32}$/.test(key) ? `parameter ${key} is repeated` : 'a parameter is repeated',
      )
    }
    params.set(key, value)
  }
  return params
}

/** The request's form parameters: form content type only, at most 64 KiB, none repeated. */
export async function readForm(c: Context): Promise<FormParams> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
  // RFC 6749 §3.2 / RFC 7009 §2.1: requests are application/x-www-form-urlencoded.
  if (type !== 'application/x-www-form-urlencoded') {
    throw invalidRequest('content type must be application/x-www-form-urlencoded')
  }
  const text = await readBody(c.req.raw, MAX_TOKEN_REQUEST_BYTES)
  if (text === undefined) {
    throw new OAuthError(
      'invalid_request',
      `request body exceeds ${MAX_TOKEN_REQUEST_BYTES} bytes`,
      { status: 413 },
    )
  }
  return parseForm(text)
}

// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64.
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}

/**
 * RFC 6749 §2.3 client authentication with the method the client registered: `none` (client_id
 * in the form), `client_secret_basic` or `client_secret_post`. Throws `invalid_client` (401, with
 * a Basic challenge when Basic was tried) or `invalid_request`.
 */
export async function authenticateClient(
  clients: ClientRegistry,
  c: Context,
  params: FormParams,
): Promise<OAuthClient> {
  const header = c.req.header('authorization')
  let method: AuthMethod = 'none'
  let clientId = params.get('client_id')
  let secret: string | undefined
  const fail = (description: string, basic: boolean) =>
    new OAuthError(
      'invalid_client',
      description,
      basic ? { headers: { 'www-authenticate': BASIC_CHALLENGE } } : {},
    )

  if (header !== undefined) {
    const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header)
    if (!m?.[1]) throw fail('unsupported Authorization header; use Basic', true)
    const decoded = Buffer.from(m[1], 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) throw fail('malformed Basic credentials', true)
    let basicId: string
    try {
      basicId = formDecode(decoded.slice(0, colon))
      secret = formDecode(decoded.slice(colon + 1))
    } catch {
      throw fail('malformed Basic credentials', true)
    }
    // RFC 6749 §2.3: a client uses one authentication method per request.
    if (params.has('client_secret')) {
      throw invalidRequest('use either HTTP Basic or client_secret, not both')
    }
    if (clientId !== undefined && clientId !== basicId) {
      throw fail('client_id does not match the Basic credentials', true)
    }
    clientId = basicId
    method = 'client_secret_basic'
  } else if (params.has('client_secret')) {
    secret = params.get('client_secret')
    method = 'client_secret_post'
  }
  const basic = method === 'client_secret_basic'
  if (!clientId) throw fail('client authentication required', basic)
  const client = await clients.getClient(clientId)
  if (!client) throw fail('unknown client', basic)
  // RFC 6749 §2.3: the method must be the one the client registered (RFC 7591 §2).
  if (client.tokenEndpointAuthMethod !== method) {
    throw fail(`client must authenticate with ${client.tokenEndpointAuthMethod}`, basic)
  }
  // RFC 6749 §2.3.1: secrets compared in constant time against the stored hash.
  if (method !== 'none' && (secret === undefined || !verifyClientSecret(client, secret))) {
    throw fail('client authentication failed', basic)
  }
  return client
}

export interface ClientPostEndpointOptions {
  path: string
  /** Rate-limit counter namespace and the endpoint's name in logs. */
  name: string
  /** Requests per minute per client IP. */
  limit: number
  store: Store
  logger: Logger
  clientIp?: ClientIpResolver
  now?: () => number
  /** Checks the form before the client is authenticated (e.g. grant_type); throws to refuse. */
  precheck?: (params: FormParams) => void
  /** Runs with the parsed form and the authenticated client; throws OAuthError to refuse. */
  handle(c: Context, client: OAuthClient, params: FormParams): Promise<Response>
  clients: ClientRegistry
}

/**
 * A Hono app serving one client-authenticated form POST at `path` (mount at '/'): CORS for
 * browser clients, the rate limit, the form, client authentication, then `handle`; whatever it
 * throws becomes an RFC 6749 §5.2 error. Other methods answer 405.
 */
export function createClientPostEndpoint(options: ClientPostEndpointOptions): Hono {
  const { path, name, logger, clients } = options
  const app = new Hono()
  app.use(
    path,
    cors({
      origin: '*',
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['Authorization', 'Content-Type', 'MCP-Protocol-Version'],
      maxAge: 86400,
    }),
  )
  app.post(
    path,
    createRateLimiter({
      store: options.store,
      name,
      limit: options.limit,
      logger,
      ...(options.now ? { now: options.now } : {}),
      ...(options.clientIp ? { clientIp: options.clientIp } : {}),
    }),
    (c) =>
      answerOAuth(name, logger, async () => {
        const params = await readForm(c)
        options.precheck?.(params)
        const client = await authenticateClient(clients, c, params)
        return options.handle(c, client, params)
      }),
  )
  app.all(path, () => oauthError(405, 'invalid_request', 'use POST', { allow: 'POST, OPTIONS' }))
  return app
}
