import { createHash } from 'node:crypto'
import * as oauth from 'oauth4webapi'
import type { OutgoingStrategyConfig } from '../../config/index.js'
import { fingerprint, type Logger } from '../../log/index.js'
import {
  abortable,
  createOutboundFetch,
  isLoopbackHost,
  readLimitedText,
  type FetchLike,
} from '../../net/index.js'
import type { Identity } from '../incoming/index.js'
import { OutgoingAuthError, type OutgoingAuthStrategy } from './types.js'

/** The `tokenExchange` block of a `token_exchange` strategy in the YAML. */
export type TokenExchangeConfig = Extract<
  OutgoingStrategyConfig,
  { type: 'token_exchange' }
>['tokenExchange']

export interface TokenExchangeOptions {
  /** Backend name: error messages and log lines carry it. */
  backend: string
  logger: Logger
  /** Outbound fetch for the token endpoint; default `createOutboundFetch()`. */
  fetch?: FetchLike
  /** Clock in epoch ms, for cache expiry; default `Date.now`. */
  now?: () => number
  /** Upper bound on cached exchanged tokens; least recently used go first. Default 10 000. */
  maxCacheEntries?: number
  /** Upper bound on one exchange, including reading the response. Default 10 s. */
  timeoutMs?: number
}

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'
// Refresh this long before the token (or the subject token) expires, so a token we hand out is
// not already expired by the time the backend checks it.
const EXPIRY_SKEW_MS = 30_000
// RFC 8693 §2.2.1: expires_in is only RECOMMENDED; without it, re-exchange soon rather than guess.
const DEFAULT_TTL_MS = 60_000
const MAX_ERROR_BODY_BYTES = 64 * 1024

interface ExchangedToken {
  accessToken: string
  /** Epoch ms after which the cache must not return it. */
  expiresAt: number
}

/**
 * RFC 8693 token exchange: trades the caller's verified incoming token (the subject token) at an
 * operator-configured token endpoint for a token meant for one backend, and sends that as
 * `Authorization: Bearer`. The caller's own token is never sent to the backend.
 *
 * Exchanged tokens are cached per (issuer, subject, SHA-256 of the subject token) in this
 * strategy instance (one instance per backend), until `expires_in` minus 30 s and never past the
 * subject token's own `exp`. Concurrent requests for the same key share one exchange.
 */
export function createTokenExchangeStrategy(
  config: TokenExchangeConfig,
  options: TokenExchangeOptions,
): OutgoingAuthStrategy {
  const { backend } = options
  const now = options.now ?? Date.now
  const maxEntries = Math.max(1, options.maxCacheEntries ?? 10_000)
  const timeoutMs = options.timeoutMs ?? 10_000
  const log = options.logger.child({
    component: 'outgoing-auth',
    backend,
    strategy: 'token_exchange',
  })

  const tokenUrl = new URL(config.tokenUrl)
  // No discovery: the operator named the token endpoint, and that is the only endpoint we use.
  const as: oauth.AuthorizationServer = { issuer: tokenUrl.origin, token_endpoint: tokenUrl.href }
  const client: oauth.Client = { client_id: config.clientId }
  // OAuth 2.1 §1.5: TLS everywhere except loopback (the config schema enforces the same rule).
  const insecure = tokenUrl.protocol === 'http:' && isLoopbackHost(tokenUrl.hostname)
  let fetchImpl = options.fetch

  // Map iteration order is insertion order; re-inserting on hit makes the first key the LRU one.
  const cache = new Map<string, ExchangedToken>()
  const inflight = new Map<string, Promise<ExchangedToken>>()

  const fail = (detail: string, cause?: unknown) =>
    new OutgoingAuthError(
      `backend ${backend}: token exchange failed: ${detail}`,
      cause === undefined ? undefined : { cause },
    )

  async function exchange(identity: Identity, subjectToken: string): Promise<ExchangedToken> {
    const params = new URLSearchParams({
      subject_token: subjectToken,
      subject_token_type: config.subjectTokenType,
      requested_token_type: ACCESS_TOKEN_TYPE,
    })
    if (config.audience !== undefined) params.set('audience', config.audience)
    if (config.resource !== undefined) params.set('resource', config.resource)
    // RFC 6749 §3.3: space-delimited
    if (config.scopes.length > 0) params.set('scope', config.scopes.join(' '))

    fetchImpl ??= createOutboundFetch()
    let result: oauth.TokenEndpointResponse
    try {
      const response = await oauth.genericTokenEndpointRequest(
        as,
        client,
        oauth.ClientSecretBasic(config.clientSecret.reveal()),
        GRANT_TYPE,
        params,
        {
          [oauth.customFetch]: fetchImpl,
          [oauth.allowInsecureRequests]: insecure,
          signal: AbortSignal.timeout(timeoutMs),
        },
      )
      result = await oauth.processGenericTokenEndpointResponse(as, client, response)
    } catch (err) {
      throw await mapError(err, [subjectToken, config.clientSecret.reveal()])
    }

    // RFC 8693 §2.2.1: token_type says how to use the token; we only send Bearer (no DPoP key).
    if (result.token_type !== 'bearer') {
      throw fail(`token_type ${sanitize(result.token_type, [])} is not supported (need Bearer)`)
    }
    // MCP authorization spec forbids token passthrough: an endpoint that echoes the subject token
    // would make us forward the caller's own token to the backend.
    if (result.access_token === subjectToken) {
      throw fail("token endpoint returned the caller's own token; refusing to forward it")
    }

    const t = now()
    const lifetimeEnd =
      result.expires_in === undefined
        ? t + DEFAULT_TTL_MS
        : t + result.expires_in * 1000 - EXPIRY_SKEW_MS
    // The exchanged token must not outlive the grant it was derived from.
    const exp = identity.claims.exp
    const subjectEnd =
      typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 - EXPIRY_SKEW_MS : Infinity
    const expiresAt = Math.min(lifetimeEnd, subjectEnd)
    log.debug(
      {
        subjectTokenFp: fingerprint(subjectToken),
        accessTokenFp: fingerprint(result.access_token),
        expiresIn: result.expires_in,
        cacheMs: Math.max(0, expiresAt - t),
      },
      'token exchange performed',
    )
    return { accessToken: result.access_token, expiresAt }
  }

  async function mapError(err: unknown, secrets: string[]): Promise<OutgoingAuthError> {
    // oauth4webapi errors are never attached as `cause`: their enumerable `cause` holds response
    // bodies, which a logger would serialize (and a misbehaving endpoint may echo tokens).
    if (err instanceof oauth.ResponseBodyError) {
      // RFC 6749 §5.2 error response
      return fail(describeOAuthError(err.error, err.error_description, err.status, secrets))
    }
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      // RFC 6749 §5.2: a 401 for failed client authentication may come with a challenge; the
      // body usually still carries the `error` code, so prefer it.
      const body = await readLimitedText(err.response, MAX_ERROR_BODY_BYTES).catch(() => '')
      const parsed = parseErrorBody(body)
      const code = parsed?.error ?? err.cause[0]?.parameters.error ?? 'invalid_client'
      return fail(describeOAuthError(code, parsed?.error_description, err.status, secrets))
    }
    if (
      err instanceof oauth.OperationProcessingError ||
      err instanceof oauth.UnsupportedOperationError
    ) {
      // Messages are fixed strings from oauth4webapi; bodies live only in their `cause`.
      return fail(`invalid token endpoint response: ${err.message}`)
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      return fail(`token endpoint did not answer within ${timeoutMs} ms`)
    }
    // Network failures (connection refused, TLS): the cause names the socket error, not a secret.
    const message = err instanceof Error ? err.message : String(err)
    return fail(`token endpoint request failed: ${sanitize(message, secrets)}`, err)
  }

  function remember(key: string, token: ExchangedToken): void {
    if (token.expiresAt <= now()) return
    cache.delete(key)
    while (cache.size >= maxEntries) {
      const oldest = cache.keys().next()
      if (oldest.done) break
      cache.delete(oldest.value)
    }
    cache.set(key, token)
  }

  return {
    type: 'token_exchange',
    identityScoped: true,
    headers: async (identity, signal) => {
      const provider = config.subjectProviderName
      // Mode B: the subject is the user's token from an upstream (e.g. the corporate IdP), which
      // the exchanging server trusts, rather than vmcp's own JWT.
      const upstream =
        provider !== undefined && identity && Object.hasOwn(identity.upstreamTokens, provider)
          ? identity.upstreamTokens[provider]
          : undefined
      const subjectToken = provider === undefined ? identity?.token?.reveal() : upstream?.reveal()
      if (identity === undefined || subjectToken === undefined || subjectToken === '') {
        throw new OutgoingAuthError(
          provider === undefined || identity === undefined || identity.token === undefined
            ? `backend ${backend}: token_exchange needs an authenticated caller`
            : `backend ${backend}: no upstream token for provider ${provider} to exchange; sign in again`,
        )
      }
      signal?.throwIfAborted()
      // ARCHITECTURE.md §Storage: bearer secrets are never keys; a new incoming token for the
      // same subject gets its own exchange, so the backend token always reflects the presented one.
      const key = [identity.issuer, identity.subject, sha256(subjectToken)].join('\u0000')

      const cached = cache.get(key)
      if (cached !== undefined) {
        cache.delete(key)
        if (now() < cached.expiresAt) {
          cache.set(key, cached)
          log.debug(
            {
              subjectTokenFp: fingerprint(subjectToken),
              accessTokenFp: fingerprint(cached.accessToken),
            },
            'token exchange cache hit',
          )
          return bearer(cached.accessToken)
        }
      }

      let pending = inflight.get(key)
      if (pending === undefined) {
        // Not bound to this caller's signal: others may be waiting on the same exchange.
        const started = exchange(identity, subjectToken).then((token) => {
          remember(key, token)
          return token
        })
        pending = started
        inflight.set(key, started)
        const clear = () => {
          if (inflight.get(key) === started) inflight.delete(key)
        }
        started.then(clear, (err: unknown) => {
          clear()
          log.debug(
            { subjectTokenFp: fingerprint(subjectToken), err: (err as Error).message },
            'token exchange failed',
          )
        })
      } else {
        log.trace({ subjectTokenFp: fingerprint(subjectToken) }, 'token exchange joined in flight')
      }
      const token = await abortable(pending, signal)
      return bearer(token.accessToken)
    },
  }
}

// RFC 6750 §2.1
function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` }
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

function describeOAuthError(
  code: string,
  description: string | undefined,
  status: number,
  secrets: string[],
): string {
  const text = `${sanitize(code, secrets)} (HTTP ${status})`
  return description ? `${text}: ${sanitize(description, secrets)}` : text
}

function parseErrorBody(body: string): { error: string; error_description?: string } | undefined {
  try {
    const json: unknown = JSON.parse(body)
    if (typeof json !== 'object' || json === null) return undefined
    const { error, error_description } = json as Record<string, unknown>
    if (typeof error !== 'string') return undefined
    return typeof error_description === 'string' ? { error, error_description } : { error }
  } catch {
    return undefined
  }
}

/**
 * Text from the token endpoint is untrusted: a misbehaving endpoint might echo the subject token
 * or our client secret. Blank those out, drop control characters, and bound the length.
 */
function sanitize(text: string, secrets: string[]): string {
  let out = text
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('[REDACTED]')
  }
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]/g, ' ')
  return out.length > 200 ? `${out.slice(0, 200)}…` : out
}

