import {
  createRemoteJWKSet,
  customFetch as joseCustomFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose'
import * as oauth from 'oauth4webapi'
import type { OidcConfig } from '../../config/schema.js'
import { fingerprint, type Logger } from '../../log/logger.js'
import { Secret } from '../../log/secret.js'
import { createOutboundFetch, type FetchLike } from '../../net/fetch.js'
import { checkSecureUrl, isLoopbackHost } from '../../net/url-policy.js'
import { extractBearerToken } from './bearer.js'
import { buildBearerErrorResponse, type BearerErrorCode } from './challenge.js'
import type { Identity } from './identity.js'
import { buildProtectedResourceMetadata } from './resource-metadata.js'
import { findMissingScopes, readTokenScopes } from './scopes.js'
import { createTokenCache } from './token-cache.js'
import type { AuthRequest, AuthResult, IncomingAuthenticator } from './types.js'

export interface OidcAuthenticatorOptions {
  config: OidcConfig
  logger: Logger
  /** Outbound fetch for discovery, JWKS and introspection; default `createOutboundFetch()`. */
  fetch?: FetchLike
  /** Absolute URL of this resource's RFC 9728 document, sent in every challenge. */
  resourceMetadataUrl: string
  /**
   * Keys known in-process (Mode B: vmcp's own signing keys). Tried first; a token signed by a
   * key they do not have falls back to the issuer's published JWKS.
   */
  localKeys?: JWTVerifyGetKey
}

// A failed discovery is retried on a later request, after a backoff that doubles per failure, so
// an IdP outage neither pins the failure forever nor turns every request into a discovery call.
const DISCOVERY_BACKOFF_MIN_MS = 1_000
const DISCOVERY_BACKOFF_MAX_MS = 60_000
// RFC 7662 §4: caching trades revocation latency for load; five minutes bounds the former.
const INTROSPECTION_POSITIVE_TTL_MS = 5 * 60_000
const INTROSPECTION_NEGATIVE_TTL_MS = 30_000
const INTROSPECTION_CACHE_ENTRIES = 10_000
const JWT_CACHE_ENTRIES = 10_000
const JWT_CACHE_MS = 5 * 60_000

// Descriptions sent to clients: fixed strings, never token content.
const UNAVAILABLE = 'token verification unavailable'

/** A verified JWT as cached: its claims, and its identity once a request passed the scope check. */
interface VerifiedJwt {
  claims: JWTPayload
  identity?: Identity
}

type Verdict =
  | { ok: true; claims: Record<string, unknown>; cached?: VerifiedJwt }
  | { ok: false; description: string }

const reject = (description: string): Verdict => ({ ok: false, description })

function buildUnavailableResponse(): Response {
  return new Response(
    JSON.stringify({ error: 'temporarily_unavailable', error_description: UNAVAILABLE }),
    {
      status: 503,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '5' },
    },
  )
}

/**
 * A one-line summary of an error that is safe to log: never its `cause` (oauth4webapi and jose
 * attach response bodies and JWT payloads there). A string, because the logger redacts `code` keys.
 */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return 'non-Error thrown'
  const code = (err as { code?: unknown }).code
  return `${err.name}${typeof code === 'string' ? ` (${code})` : ''}: ${err.message}`
}

// RFC 7515 §4.1.9: `typ` may omit the "application/" prefix and compares case-insensitively.
function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase()
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower
}

// RFC 9449 §7.2 / RFC 8705 §3: a token bound to a key or certificate must not be accepted as a
// plain bearer token; this resource checks no proof, so such a token is refused outright.
function isSenderConstrained(claims: Readonly<Record<string, unknown>>): boolean {
  const cnf = claims.cnf
  return typeof cnf === 'object' && cnf !== null && ('jkt' in cnf || 'x5t#S256' in cnf)
}

// OIDC Core §2 / §3.1.3.6 / §3.3.2.11: claims only an ID token carries. An ID token is proof of a
// sign-in for its client, not a grant to call a resource (RFC 9068 §5, RFC 8725 §2.8).
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash'] as const
// Header `typ` values IdPs put on ID tokens (`JWT` is shared with access tokens; the claims decide).
const ID_TOKEN_TYPES = new Set(['id_token', 'id-token+jwt', 'id_token+jwt'])
const ID_TOKEN = 'ID token is not an access token'

const KNOWN_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat', 'sub', 'jti'])

/** Exactly two dots, without splitting the token into copies of its parts. */
function isCompactJws(token: string): boolean {
  const first = token.indexOf('.')
  if (first < 0) return false
  const second = token.indexOf('.', first + 1)
  return second > 0 && token.indexOf('.', second + 1) < 0
}

/** Maps a jose verification failure to a short client-facing description. */
function describeJoseFailure(err: unknown): string | undefined {
  if (err instanceof joseErrors.JWTExpired) return 'token expired'
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token not yet valid'
    if (err.claim === 'aud') return 'audience mismatch'
    if (err.claim === 'iss') return 'issuer mismatch'
    if (KNOWN_CLAIMS.has(err.claim)) {
      return err.reason === 'missing' ? `missing ${err.claim} claim` : `invalid ${err.claim} claim`
    }
    return 'invalid claims'
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'unsupported algorithm'
  if (err instanceof joseErrors.JOSENotSupported) return 'unsupported algorithm'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return 'signature verification failed'
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'unknown signing key'
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'ambiguous signing key'
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) {
    return 'malformed token'
  }
  // Anything else (JWKS timeout, non-200, invalid JWKS, network) is our problem, not the token's.
  return undefined
}

/**
 * External OIDC / OAuth 2.0 access tokens: JWTs verified against the issuer's JWKS, opaque tokens
 * through RFC 7662 introspection when configured. Nothing touches the network until the first
 * request that carries a token.
 */
export function createOidcAuthenticator(options: OidcAuthenticatorOptions): IncomingAuthenticator {
  const { config, logger, resourceMetadataUrl } = options
  const fetchImpl = options.fetch ?? createOutboundFetch()
  const log = logger.child({ component: 'auth.incoming.oidc' })

  // OAuth 2.1 §1.5 / RFC 8414 §2: TLS everywhere. oauth4webapi refuses http outright; we lift that
  // only for loopback http, the one exception checkSecureUrl (and so the config schema) allows.
  const httpOptions = (url: URL) => ({
    [oauth.customFetch]: (input: string, init: RequestInit) => fetchImpl(input, init),
    ...(url.protocol === 'http:' && isLoopbackHost(url.hostname)
      ? { [oauth.allowInsecureRequests]: true }
      : {}),
  })

  // ---- signing keys (lazy discovery) ----

  let keySet: JWTVerifyGetKey | undefined
  let pendingKeySet: Promise<JWTVerifyGetKey> | undefined
  let discoveryFailure: { at: number; count: number } | undefined

  const remoteKeySet = (url: URL) =>
    createRemoteJWKSet(url, {
      // jose refetches on an unknown `kid` once the 30 s cooldown has passed (key rotation).
      [joseCustomFetch]: (input, init) => fetchImpl(input, init),
    })

  async function discoverJwksUri(): Promise<URL> {
    const issuer = new URL(config.issuer)
    let lastError: unknown
    // OpenID Connect Discovery first (what most IdPs serve), then RFC 8414 §3's well-known path.
    for (const algorithm of ['oidc', 'oauth2'] as const) {
      let metadata: oauth.AuthorizationServer
      try {
        const response = await oauth.discoveryRequest(issuer, { algorithm, ...httpOptions(issuer) })
        if (response.status !== 200) {
          await response.body?.cancel()
          lastError = new Error(`HTTP ${response.status} from the ${algorithm} discovery endpoint`)
          continue
        }
        metadata = await oauth.processDiscoveryResponse(issuer, response)
      } catch (err) {
        // RFC 8414 §3.3: metadata naming another issuer MUST NOT be used; trying the other
        // well-known location would only invite a second, equally untrusted document.
        if (
          err instanceof oauth.OperationProcessingError &&
          err.code === oauth.JSON_ATTRIBUTE_COMPARISON
        ) {
          throw new Error('discovery document issuer does not match the configured issuer')
        }
        lastError = err
        continue
      }
      const jwksUri = metadata.jwks_uri
      if (typeof jwksUri !== 'string') throw new Error('discovery document has no jwks_uri')
      const why = checkSecureUrl(jwksUri)
      if (why) throw new Error(`discovery jwks_uri ${why}`)
      return new URL(jwksUri)
    }
    throw lastError instanceof Error ? lastError : new Error('discovery failed')
  }

  /** The key resolver, or undefined while discovery is failing (already logged). */
  async function getKeySet(): Promise<JWTVerifyGetKey | undefined> {
    const local = options.localKeys
    if (!local) return getRemoteKeySet()
    return async (header, token) => {
      try {
        return await local(header, token)
      } catch (err) {
        const remote = await getRemoteKeySet()
        if (!remote) throw err
        return remote(header, token)
      }
    }
  }

  async function getRemoteKeySet(): Promise<JWTVerifyGetKey | undefined> {
    if (keySet) return keySet
    // A configured jwksUrl makes discovery unnecessary: the issuer is still checked per token.
    if (config.jwksUrl) return (keySet = remoteKeySet(new URL(config.jwksUrl)))
    if (discoveryFailure) {
      const backoff = Math.min(
        DISCOVERY_BACKOFF_MIN_MS * 2 ** (discoveryFailure.count - 1),
        DISCOVERY_BACKOFF_MAX_MS,
      )
      if (Date.now() < discoveryFailure.at + backoff) return undefined
    }
    // Concurrent first requests share one discovery.
    pendingKeySet ??= discoverJwksUri()
      .then(
        (jwksUri) => {
          discoveryFailure = undefined
          log.debug({ issuer: config.issuer, jwksUri: jwksUri.href }, 'issuer discovered')
          return (keySet = remoteKeySet(jwksUri))
        },
        (err: unknown) => {
          discoveryFailure = { at: Date.now(), count: (discoveryFailure?.count ?? 0) + 1 }
          log.error(
            { issuer: config.issuer, error: describeError(err), failures: discoveryFailure.count },
            'OIDC discovery failed; tokens cannot be verified until it succeeds',
          )
          throw err
        },
      )
      .finally(() => {
        pendingKeySet = undefined
      })
    try {
      return await pendingKeySet
    } catch {
      return undefined
    }
  }

  // Verified JWTs, so a session's every request does not redo the signature check. Entries live
  // until the token's exp (never longer than JWT_CACHE_MS, bounding how long a key removed from
  // the JWKS keeps working); keys are SHA-256 of the token. The identity built for a token is
  // kept with it: a session's next request costs one hash and a lookup.
  const jwtCache = createTokenCache<VerifiedJwt>({ maxEntries: JWT_CACHE_ENTRIES })

  async function verifyJwt(token: string): Promise<Verdict> {
    const cached = jwtCache.get(token)
    if (cached) return { ok: true, claims: cached.claims, cached }
    const verdict = await verifyJwtUncached(token)
    if (verdict.ok && typeof verdict.claims.exp === 'number') {
      const entry: VerifiedJwt = { claims: verdict.claims as JWTPayload }
      jwtCache.set(token, entry, Math.min(verdict.claims.exp * 1000, Date.now() + JWT_CACHE_MS))
      return { ...verdict, cached: entry }
    }
    return verdict
  }

  async function verifyJwtUncached(token: string): Promise<Verdict> {
    let typ: unknown
    let alg: unknown
    try {
      ;({ typ, alg } = decodeProtectedHeader(token))
    } catch {
      return reject('malformed token')
    }
    // RFC 9068 §4 asks for `at+jwt`, but Entra and others issue plain `JWT` or no typ; any other
    // typ (a logout token, a DPoP proof, a signed introspection response) is not an access token.
    if (typeof typ === 'string' && ID_TOKEN_TYPES.has(normalizeTyp(typ))) return reject(ID_TOKEN)
    const typOk = typeof typ === 'string' && ['at+jwt', 'jwt'].includes(normalizeTyp(typ))
    if (typ !== undefined && !typOk) return reject('unsupported token type')
    // RFC 8725 §3.1: only the configured algorithms; refuses `none` and HS256-with-public-key
    // before any network work (jwtVerify enforces the same list again below).
    if (typeof alg !== 'string' || !(config.algorithms as readonly string[]).includes(alg)) {
      return reject('unsupported algorithm')
    }
    const keys = await getKeySet()
    if (!keys) return reject(UNAVAILABLE)
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, keys, {
        algorithms: config.algorithms,
        // RFC 9068 §4: `iss` exactly the configured issuer, `aud` containing our audience.
        issuer: config.issuer,
        audience: config.audience,
        clockTolerance: config.clockSkew / 1000,
        requiredClaims: ['exp', 'sub'],
      }))
    } catch (err) {
      const description = describeJoseFailure(err)
      if (description) return reject(description)
      log.warn({ error: describeError(err) }, 'JWKS unavailable; token could not be verified')
      return reject(UNAVAILABLE)
    }
    // An ID token whose `aud` (its client id) happens to be our audience passed every check above.
    if (ID_TOKEN_CLAIMS.some((claim) => payload[claim] !== undefined)) return reject(ID_TOKEN)
    if (typeof payload.sub !== 'string' || payload.sub === '') return reject('invalid sub claim')
    if (isSenderConstrained(payload)) return reject('sender-constrained tokens are not supported')
    return { ok: true, claims: payload }
  }

  // ---- opaque tokens (RFC 7662) ----

  const introspection = config.introspection
  const requireAudience = introspection?.requireAudience ?? true
  const introspectionServer: oauth.AuthorizationServer | undefined = introspection && {
    issuer: config.issuer,
    introspection_endpoint: introspection.url,
  }
  const introspectionClient: oauth.Client | undefined = introspection && {
    client_id: introspection.clientId,
  }
  const activeCache = createTokenCache<Record<string, unknown>>({
    maxEntries: INTROSPECTION_CACHE_ENTRIES,
  })
  // A separate map, so a flood of junk tokens cannot evict the positive entries.
  const inactiveCache = createTokenCache<string>({ maxEntries: INTROSPECTION_CACHE_ENTRIES })

  /** Checks an active introspection response the way jwtVerify checks a JWT payload. */
  function checkIntrospected(claims: oauth.IntrospectionResponse, now: number): string | undefined {
    const skew = config.clockSkew
    // RFC 7662 §2.2: these members are optional; when present they must agree with our config.
    if (claims.iss !== undefined && claims.iss !== config.issuer) return 'issuer mismatch'
    if (claims.aud !== undefined) {
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
      if (!aud.includes(config.audience)) return 'audience mismatch'
    } else if (requireAudience) {
      // RFC 8707 §2 / RFC 9700 §2.3: a token not restricted to this resource may have been
      // issued to any client for any resource of the issuer; `active` alone does not make it ours.
      return 'token has no audience'
    }
    if (claims.exp !== undefined && claims.exp * 1000 + skew <= now) return 'token expired'
    if (claims.nbf !== undefined && claims.nbf * 1000 - skew > now) return 'token not yet valid'
    // RFC 7662 §2.2 token_type is an RFC 6749 §7.1 type: only "Bearer" is usable as a bearer token.
    if (claims.token_type !== undefined && claims.token_type.toLowerCase() !== 'bearer') {
      return 'unsupported token type'
    }
    if (isSenderConstrained(claims)) return 'sender-constrained tokens are not supported'
    if (typeof claims.sub !== 'string' || claims.sub === '') return 'missing sub claim'
    return undefined
  }

  async function introspect(token: string, tokenFingerprint: string): Promise<Verdict> {
    if (!introspection || !introspectionServer || !introspectionClient) {
      return reject('token is not a JWT and introspection is not configured')
    }
    const cached = activeCache.get(token)
    if (cached) {
      log.trace({ tokenFingerprint }, 'introspection cache hit')
      return { ok: true, claims: cached }
    }
    const cachedRejection = inactiveCache.get(token)
    if (cachedRejection) return reject(cachedRejection)

    let claims: oauth.IntrospectionResponse
    try {
      const response = await oauth.introspectionRequest(
        introspectionServer,
        introspectionClient,
        oauth.ClientSecretBasic(introspection.clientSecret.reveal()),
        token,
        {
          additionalParameters: { token_type_hint: 'access_token' },
          ...httpOptions(new URL(introspection.url)),
        },
      )
      claims = await oauth.processIntrospectionResponse(
        introspectionServer,
        introspectionClient,
        response,
      )
    } catch (err) {
      // Not cached: the next request tries again.
      log.error({ error: describeError(err), tokenFingerprint }, 'token introspection failed')
      return reject(UNAVAILABLE)
    }
    const now = Date.now()
    const problem = claims.active ? checkIntrospected(claims, now) : 'token is not active'
    if (problem) {
      inactiveCache.set(token, problem, now + INTROSPECTION_NEGATIVE_TTL_MS)
      return reject(problem)
    }
    const { active: _active, ...rest } = claims
    const expiresAt = Math.min(
      claims.exp !== undefined ? claims.exp * 1000 : Infinity,
      now + INTROSPECTION_POSITIVE_TTL_MS,
    )
    activeCache.set(token, rest, expiresAt)
    return { ok: true, claims: rest }
  }

  // ---- the request path ----

  const fail = (error: BearerErrorCode, errorDescription: string): AuthResult => ({
    ok: false,
    response: buildBearerErrorResponse({
      resourceMetadataUrl,
      scopes: config.scopes,
      error,
      errorDescription,
    }),
  })

  return {
    type: 'oidc',

    async authenticate(request: AuthRequest): Promise<AuthResult> {
      const extracted = extractBearerToken(request.headers)
      if (extracted.kind === 'missing') {
        log.debug('no bearer token')
        // RFC 6750 §3.1: no error code when the request lacks authentication information.
        return {
          ok: false,
          response: buildBearerErrorResponse({ resourceMetadataUrl, scopes: config.scopes }),
        }
      }
      if (extracted.kind === 'malformed') {
        log.debug('malformed Authorization header')
        return fail('invalid_request', 'malformed authorization header')
      }
      const { token } = extracted
      // RFC 7519 §3 / RFC 7515 §7.1: a JWS compact serialization has exactly three parts.
      const verdict =
        isCompactJws(token) ? await verifyJwt(token) : await introspect(token, fingerprint(token))
      if (verdict.ok && verdict.cached?.identity) {
        const { identity } = verdict.cached
        if (log.isLevelEnabled('debug')) {
          log.debug({ tokenFingerprint: fingerprint(token), sub: identity.subject }, 'bearer token accepted')
        }
        return { ok: true, identity }
      }
      const tokenFingerprint = fingerprint(token)
      if (!verdict.ok && verdict.description === UNAVAILABLE) {
        // The IdP is unreachable, not the token bad: a 401 would make clients throw away good
        // tokens and send users through sign-in again during an outage.
        return { ok: false, response: buildUnavailableResponse() }
      }
      if (!verdict.ok) {
        log.debug({ tokenFingerprint, reason: verdict.description }, 'bearer token rejected')
        // RFC 6750 §3.1: invalid_token for expired, revoked, malformed or otherwise invalid tokens.
        return fail('invalid_token', verdict.description)
      }
      const { claims } = verdict
      const missing = findMissingScopes(config.requiredScopes, readTokenScopes(claims))
      if (missing.length > 0) {
        log.debug({ tokenFingerprint, missing }, 'bearer token lacks required scopes')
        // RFC 6750 §3.1: insufficient_scope → 403, `scope` naming what the request needs.
        return {
          ok: false,
          response: buildBearerErrorResponse({
            resourceMetadataUrl,
            scopes: config.requiredScopes,
            error: 'insufficient_scope',
            errorDescription: 'insufficient scope',
          }),
        }
      }
      const identity: Identity = {
        subject: claims.sub as string,
        issuer: config.issuer,
        claims: Object.freeze({ ...claims }),
        token: new Secret(token),
        upstreamTokens: Object.freeze({}),
      }
      if (verdict.cached) verdict.cached.identity = identity
      log.debug({ tokenFingerprint, sub: identity.subject }, 'bearer token accepted')
      return { ok: true, identity }
    },

    protectedResourceMetadata() {
      return buildProtectedResourceMetadata({
        resource: config.resource,
        authorizationServers: [config.issuer],
        scopes: config.scopes,
      })
    },

    async close() {
      activeCache.clear()
      inactiveCache.clear()
    },
  }
}
