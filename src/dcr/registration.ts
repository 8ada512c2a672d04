import * as oauth from 'oauth4webapi'
import { checkSecureUrl, readLimitedText } from '../net/index.js'
import { DcrError } from './errors.js'
import { requestOptions, toDcrError, type DcrHttp } from './http.js'
import type { DcrCredentials, DcrKey, DcrServerMetadata, TokenEndpointAuthMethod } from './types.js'

export interface RegisterOptions {
  server: DcrServerMetadata
  /** Raw metadata for method selection (token_endpoint_auth_methods_supported, PKCE methods). */
  advertised: Partial<oauth.AuthorizationServer>
  key: DcrKey
  upstream: string
  scopes: readonly string[]
  clientName: string
  softwareId?: string
  softwareStatement?: string
  initialAccessToken?: string
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod
  now: () => number
}

const PREFERENCE: TokenEndpointAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'none']
const MAX_BODY = 1024 * 1024

/**
 * The token endpoint authentication method to ask for: the configured one, else the first of
 * basic > post > none that the server advertises; `none` only with PKCE S256 (OAuth 2.1 §2.4: a
 * public client relies on PKCE). No advertisement: client_secret_basic (RFC 8414 §2 default).
 */
export function chooseAuthMethod(
  advertised: Partial<oauth.AuthorizationServer>,
  configured?: TokenEndpointAuthMethod,
): TokenEndpointAuthMethod {
  if (configured) return configured
  const supported = advertised.token_endpoint_auth_methods_supported
  if (!Array.isArray(supported)) return 'client_secret_basic'
  const s256 = advertised.code_challenge_methods_supported?.includes('S256') ?? false
  const pick = PREFERENCE.find((m) => supported.includes(m) && (m !== 'none' || s256))
  if (!pick) {
    throw new DcrError(
      'registration',
      `the server supports none of ${PREFERENCE.join(', ')} for token endpoint authentication (it offers ${supported.join(', ').slice(0, 200)})`,
    )
  }
  return pick
}

/** RFC 7591 §3.1 registration through oauth4webapi; resolves with everything worth keeping. */
export async function registerClient(
  options: RegisterOptions,
  http: DcrHttp,
): Promise<DcrCredentials> {
  const { server } = options
  const endpoint = server.registration_endpoint
  if (!endpoint) {
    throw new DcrError(
      'registration',
      `the authorization server ${server.issuer} advertises no registration_endpoint (RFC 8414 §2); it does not support dynamic client registration`,
    )
  }
  const method = chooseAuthMethod(options.advertised, options.tokenEndpointAuthMethod)
  const registered: DcrCredentials['registered'] = {
    redirect_uris: [options.key.redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    client_name: options.clientName,
    ...(options.scopes.length > 0 ? { scope: options.scopes.join(' ') } : {}),
    ...(options.softwareId ? { software_id: options.softwareId } : {}),
  }
  const metadata: Record<string, unknown> = {
    ...registered,
    token_endpoint_auth_method: method,
    // RFC 7591 §2.3: the signed statement travels as is; the server vouches for its contents.
    ...(options.softwareStatement ? { software_statement: options.softwareStatement } : {}),
  }
  let client: oauth.OmitSymbolProperties<oauth.Client>
  try {
    const response = await oauth.dynamicClientRegistrationRequest(
      { issuer: server.issuer, registration_endpoint: endpoint },
      metadata as Partial<oauth.Client>,
      {
        ...requestOptions(http, endpoint),
        // RFC 7591 §3: an initial access token authorizes the registration as a Bearer token.
        ...(options.initialAccessToken ? { initialAccessToken: options.initialAccessToken } : {}),
      },
    )
    client = await oauth.processDynamicClientRegistrationResponse(response)
  } catch (err) {
    throw toDcrError('registration', 'registration', endpoint, err, http.timeoutMs)
  }
  return toCredentials(client, { ...options, method, registered })
}

function toCredentials(
  client: Record<string, unknown>,
  ctx: {
    key: DcrKey
    upstream: string
    server: DcrServerMetadata
    method: TokenEndpointAuthMethod
    registered: DcrCredentials['registered']
    now: () => number
  },
): DcrCredentials {
  const str = (k: string) =>
    typeof client[k] === 'string' && client[k] !== '' ? (client[k] as string) : undefined
  const num = (k: string) => (typeof client[k] === 'number' ? (client[k] as number) : undefined)
  const clientId = str('client_id')
  if (!clientId)
    throw new DcrError(
      'registration',
      'the registration response has no client_id (RFC 7591 §3.2.1)',
    )
  const secret = str('client_secret')
  // RFC 7591 §3.2.1: the server may change the method; use what it answered. A client without a
  // secret can only be public.
  const answered = str('token_endpoint_auth_method')
  const method: TokenEndpointAuthMethod = !secret
    ? 'none'
    : answered === 'client_secret_post' || answered === 'client_secret_basic'
      ? answered
      : ctx.method === 'none'
        ? 'client_secret_basic'
        : ctx.method
  const creds: DcrCredentials = {
    key: ctx.key,
    upstream: ctx.upstream,
    clientId,
    tokenEndpointAuthMethod: method,
    server: ctx.server,
    registered: ctx.registered,
    createdAt: ctx.now(),
  }
  if (secret) creds.clientSecret = secret
  const issuedAt = num('client_id_issued_at')
  if (issuedAt !== undefined) creds.clientIdIssuedAt = issuedAt
  const expiresAt = num('client_secret_expires_at')
  if (expiresAt !== undefined) creds.clientSecretExpiresAt = expiresAt
  const rat = str('registration_access_token')
  if (rat) creds.registrationAccessToken = rat
  const rcu = str('registration_client_uri')
  if (rcu && checkSecureUrl(rcu) === undefined) creds.registrationClientUri = rcu
  return creds
}

/**
 * RFC 7592 §2.2 client update: PUT the registered metadata to `registration_client_uri` with the
 * registration access token, and keep the rotated secret, token and URI it answers. oauth4webapi
 * has no RFC 7592 support, so this one request is made here through the shared fetch.
 */
export async function renewClient(
  creds: DcrCredentials,
  http: DcrHttp,
  now: () => number,
): Promise<DcrCredentials> {
  const uri = creds.registrationClientUri
  const rat = creds.registrationAccessToken
  if (!uri || !rat) {
    throw new DcrError(
      'renewal',
      'the registration has no registration_client_uri or registration_access_token, so the server does not support RFC 7592 renewal; vmcp will register again when the secret expires',
    )
  }
  // RFC 7592 §2.2: client_id plus the metadata; never the registration access token, the URI or
  // the server-set timestamps, and no client_secret (a server may only accept the current one).
  const body = {
    client_id: creds.clientId,
    ...creds.registered,
    token_endpoint_auth_method: creds.tokenEndpointAuthMethod,
  }
  let status = 0
  let text: string
  try {
    const res = await http.fetch(uri, {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        authorization: `Bearer ${rat}`,
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(http.timeoutMs),
    })
    status = res.status
    text = await readLimitedText(res, MAX_BODY)
  } catch (err) {
    throw toDcrError('renewal', 'RFC 7592 renewal', uri, err, http.timeoutMs)
  }
  let json: Record<string, unknown> | undefined
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      json = parsed as Record<string, unknown>
  } catch {
    json = undefined
  }
  if (status !== 200) {
    const error = typeof json?.error === 'string' ? json.error.slice(0, 64) : undefined
    const description =
      typeof json?.error_description === 'string' ? json.error_description.slice(0, 300) : undefined
    const detail = error ? ` ${error}${description ? `: ${description}` : ''}` : ''
    throw new DcrError(
      'renewal',
      `RFC 7592 renewal at ${uri} failed with HTTP ${status}${detail}`,
      {
        status,
        ...(error ? { error } : {}),
        ...(description ? { errorDescription: description } : {}),
      },
    )
  }
  if (!json)
    throw new DcrError('renewal', `RFC 7592 renewal at ${uri} did not answer JSON`, { status })
  if (json.client_id !== creds.clientId) {
    throw new DcrError('renewal', `RFC 7592 renewal at ${uri} answered another client_id`)
  }
  const next = toCredentials(json, {
    key: creds.key,
    upstream: creds.upstream,
    server: creds.server,
    method: creds.tokenEndpointAuthMethod,
    registered: creds.registered,
    now,
  })
  // The server may keep the secret (and omit it) or rotate the token and URI; keep what it did
  // not replace. A rotated URI must stay on the same server.
  const renewed: DcrCredentials = {
    ...creds,
    ...next,
    createdAt: creds.createdAt,
    renewedAt: now(),
  }
  if (!next.clientSecret && creds.clientSecret) renewed.clientSecret = creds.clientSecret
  if (!next.registrationAccessToken) renewed.registrationAccessToken = rat
  if (
    !next.registrationClientUri ||
    new URL(next.registrationClientUri).origin !== new URL(uri).origin
  ) {
    renewed.registrationClientUri = uri
  }
  if (typeof json.client_secret_expires_at !== 'number') delete renewed.clientSecretExpiresAt
  if (!creds.clientSecret) renewed.tokenEndpointAuthMethod = creds.tokenEndpointAuthMethod
  return renewed
}
