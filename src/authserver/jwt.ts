import { createHash, randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import type { SigningKeys } from './keys.js'

export interface IssueAccessTokenOptions {
  keys: SigningKeys
  issuer: string
  subject: string
  /** RFC 8707 resource the grant was made for. */
  audience: string
  clientId: string
  /** Space-separated granted scopes ('' when none). */
  scope: string
  /** Upstream token session: lets incoming auth load the upstream tokens of this grant. */
  tsid: string
  name?: string
  email?: string
  ttlMs: number
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number
}

export interface IssuedAccessToken {
  token: string
  jti: string
  /** Seconds until expiry, for the token response's `expires_in`. */
  expiresIn: number
  /** Epoch seconds. */
  expiresAt: number
}

/**
 * Signs an RFC 9068 access token with the current key: header `typ: at+jwt`, `alg`, `kid`;
 * claims `iss, sub, aud, exp, iat, nbf, jti, client_id, scope, tsid` and `name`/`email` when
 * given. Stateless: it cannot be revoked before `exp`, which is why revocation removes the
 * grant's refresh tokens and upstream tokens instead.
 */
export async function issueAccessToken(
  options: IssueAccessTokenOptions,
): Promise<IssuedAccessToken> {
  const { keys } = options
  const iat = Math.floor((options.now ?? Date.now)() / 1000)
  const expiresIn = Math.max(1, Math.ceil(options.ttlMs / 1000))
  // RFC 9068 §2.2: jti unique per token; 128 random bits make collisions negligible.
  const jti = randomBytes(16).toString('base64url')
  const claims: Record<string, unknown> = {
    client_id: options.clientId,
    scope: options.scope,
    tsid: options.tsid,
  }
  if (options.name !== undefined) claims.name = options.name
  if (options.email !== undefined) claims.email = options.email
  const token = await new SignJWT(claims)
    // RFC 9068 §2.1: typ at+jwt, so an ID token or other JWT cannot pass for an access token.
    .setProtectedHeader({ alg: keys.current.alg, kid: keys.current.kid, typ: 'at+jwt' })
    .setIssuer(options.issuer)
    .setSubject(options.subject)
    .setAudience(options.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + expiresIn)
    .setJti(jti)
    .sign(keys.current.privateKey)
  return { token, jti, expiresIn, expiresAt: iat + expiresIn }
}

export interface IssueIdTokenOptions {
  keys: SigningKeys
  issuer: string
  subject: string
  /** OIDC Core §2: `aud` is the client_id of the relying party. */
  clientId: string
  /** The authorization request's nonce, echoed unmodified (OIDC Core §3.1.3.7 step 11). */
  nonce?: string
  /** Epoch ms when the user signed in (the upstream chain completed). */
  authTime: number
  /** The access token issued with it, for `at_hash` (OIDC Core §3.1.3.6). */
  accessToken: string
  name?: string
  email?: string
  ttlMs: number
  now?: () => number
}

/**
 * Signs an OpenID Connect ID token (OIDC Core §2) with the current key: `iss, sub, aud` (the
 * client), `exp, iat, auth_time, at_hash`, `nonce` when the authorization request had one, and
 * `name` / `email` (+ `email_verified`, vmcp only keeps verified addresses) when given. Header
 * `typ: JWT`, never `at+jwt`, so it cannot pass for an access token (RFC 9068 §2.1), and its
 * audience is the client, not a resource.
 */
export async function issueIdToken(options: IssueIdTokenOptions): Promise<string> {
  const { keys } = options
  const iat = Math.floor((options.now ?? Date.now)() / 1000)
  const claims: Record<string, unknown> = {
    auth_time: Math.floor(options.authTime / 1000),
    // OIDC Core §3.1.3.6: left half of the SHA-256 (ES256 and RS256 both hash with SHA-256) of
    // the access token's ASCII octets, base64url.
    at_hash: createHash('sha256')
      .update(options.accessToken, 'ascii')
      .digest()
      .subarray(0, 16)
      .toString('base64url'),
  }
  if (options.nonce !== undefined) claims.nonce = options.nonce
  if (options.name !== undefined) claims.name = options.name
  if (options.email !== undefined) {
    claims.email = options.email
    claims.email_verified = true
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: keys.current.alg, kid: keys.current.kid, typ: 'JWT' })
    .setIssuer(options.issuer)
    .setSubject(options.subject)
    .setAudience(options.clientId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.ceil(options.ttlMs / 1000)))
    .sign(keys.current.privateKey)
}
