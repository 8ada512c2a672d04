import { Hono, type Context } from 'hono'
import type { AuthServerConfig } from '../config/index.js'
import type { SigningAlg, SigningKeys } from './keys.js'

export type MetadataConfig = Pick<AuthServerConfig, 'issuer' | 'scopesSupported' | 'cimd'>

export interface AuthorizationServerMetadataOptions {
  /** Default: `config.cimd.enabled`. */
  cimdEnabled?: boolean
}

/**
 * The issuer's path ('' for `https://host`, '/tenant' for `https://host/tenant`). Every endpoint
 * is under it (`${issuer}/oauth/...`); the well-known documents are not (RFC 8414 §3.1).
 */
export function issuerPath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '')
}

/**
 * Endpoint paths relative to the origin: the single source of truth for where each endpoint is
 * served and what the metadata advertises. Mount the endpoint apps at '/'.
 */
export function authServerPaths(issuer: string) {
  const base = issuerPath(issuer)
  return {
    authorize: `${base}/oauth/authorize`,
    callback: `${base}/oauth/callback`,
    consent: `${base}/oauth/consent`,
    token: `${base}/oauth/token`,
    revoke: `${base}/oauth/revoke`,
    register: `${base}/oauth/register`,
    jwks: `${base}/.well-known/jwks.json`,
  } as const
}

/** Absolute endpoint URLs (issuer origin + authServerPaths), as advertised and as registered. */
export function authServerUrls(issuer: string): Record<AuthServerEndpoint, string> {
  const { origin } = new URL(issuer)
  const paths = Object.entries(authServerPaths(issuer))
  return Object.fromEntries(paths.map(([name, path]) => [name, `${origin}${path}`])) as Record<
    AuthServerEndpoint,
    string
  >
}

export type AuthServerEndpoint = keyof ReturnType<typeof authServerPaths>

const CLIENT_AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post']
/** Every claim vmcp's ID tokens can carry (jwt.ts `issueIdToken`). */
export const ID_TOKEN_CLAIMS = [
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'auth_time',
  'nonce',
  'at_hash',
  'name',
  'email',
  'email_verified',
] as const

/**
 * The RFC 8414 §2 authorization server metadata document. It advertises only what vmcp does:
 * code flow with S256 PKCE, refresh tokens, RFC 7009 revocation, RFC 7591 registration, RFC 9207
 * `iss`, and (when enabled) Client ID Metadata Documents.
 */
export function buildAuthorizationServerMetadata(
  config: MetadataConfig,
  options: AuthorizationServerMetadataOptions = {},
): Record<string, unknown> {
  const { issuer } = config
  const urls = authServerUrls(issuer)
  return {
    issuer,
    authorization_endpoint: urls.authorize,
    token_endpoint: urls.token,
    registration_endpoint: urls.register,
    jwks_uri: urls.jwks,
    scopes_supported: [...config.scopesSupported],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    // RFC 8414 §2 / RFC 7009: revocation, with the token endpoint's client authentication.
    revocation_endpoint: urls.revoke,
    revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    // OAuth 2.1 §4.1.1 / RFC 7636 §4.2: S256 only; `plain` would give the verifier away.
    code_challenge_methods_supported: ['S256'],
    // RFC 9207 §3: authorization responses carry `iss` (mix-up defense).
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: options.cimdEnabled ?? config.cimd.enabled,
  }
}

/**
 * The same document served at `/.well-known/openid-configuration`, plus what OpenID Discovery
 * 1.0 §3 asks of an OpenID Provider, truthfully: vmcp issues an ID token with the code exchange
 * when `openid` is granted (see jwt.ts `issueIdToken`), signed with the one algorithm of its
 * current key; `sub` is public (the first upstream's subject); `claims_supported` lists every
 * claim such an ID token can carry. No userinfo endpoint is advertised: there is none.
 */
export function buildOpenIdConfiguration(
  config: MetadataConfig,
  signingAlg: SigningAlg,
  options: AuthorizationServerMetadataOptions = {},
): Record<string, unknown> {
  return {
    ...buildAuthorizationServerMetadata(config, options),
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [signingAlg],
    claims_supported: [...ID_TOKEN_CLAIMS],
  }
}

export interface MetadataAppOptions {
  config: MetadataConfig
  keys: SigningKeys
  cimdEnabled?: boolean
}

const CACHE = 'public, max-age=300'
// Browser-based MCP clients (and the SDK, which sends MCP-Protocol-Version) discover from any
// origin; these documents are public and carry no credentials, so `*` is safe.
const CORS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type, MCP-Protocol-Version',
  'access-control-max-age': '86400',
}

/**
 * GET (and CORS OPTIONS) for `/.well-known/oauth-authorization-server`,
 * `/.well-known/openid-configuration`, their RFC 8414 §3.1 path-inserted forms when the issuer
 * has a path (`/.well-known/oauth-authorization-server/<path>`, plus the OIDC
 * `<path>/.well-known/openid-configuration`), and `${issuer}/.well-known/jwks.json`. Paths are
 * absolute from the origin: mount at '/'.
 */
export function createMetadataApp(options: MetadataAppOptions): Hono {
  const { config, keys } = options
  const metaOptions = options.cimdEnabled === undefined ? {} : { cimdEnabled: options.cimdEnabled }
  const oauthBody = JSON.stringify(buildAuthorizationServerMetadata(config, metaOptions))
  const oidcBody = JSON.stringify(buildOpenIdConfiguration(config, keys.current.alg, metaOptions))
  const jwksBody = JSON.stringify(keys.jwks())
  const base = issuerPath(config.issuer)

  const app = new Hono()
  const serve = (path: string, body: string) => {
    app.get(path, (c: Context) =>
      c.body(body, 200, { 'content-type': 'application/json', 'cache-control': CACHE, ...CORS }),
    )
    app.options(path, (c: Context) => c.body(null, 204, CORS))
  }
  const oauthPaths = new Set(['/.well-known/oauth-authorization-server'])
  const oidcPaths = new Set(['/.well-known/openid-configuration'])
  if (base) {
    // RFC 8414 §3.1: insert the well-known segment between host and path.
    oauthPaths.add(`/.well-known/oauth-authorization-server${base}`)
    // RFC 8414 §5 compatibility: the same insertion for openid-configuration, and the
    // OpenID Discovery §4 form (appended to the issuer).
    oidcPaths.add(`/.well-known/openid-configuration${base}`)
    oidcPaths.add(`${base}/.well-known/openid-configuration`)
  }
  for (const path of oauthPaths) serve(path, oauthBody)
  for (const path of oidcPaths) serve(path, oidcBody)
  serve(authServerPaths(config.issuer).jwks, jwksBody)
  return app
}
