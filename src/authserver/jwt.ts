import { randomBytes } from 'node:crypto'
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
