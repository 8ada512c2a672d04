import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthServerConfig } from '../config/index.js'
import { Secret, type Logger } from '../log/index.js'
import { createOutboundFetch, readStreamLimited, type FetchLike } from '../net/index.js'
import type { Store } from '../storage/index.js'
import type { ClientRegistry, OAuthClient } from './contracts.js'
import { OAuthError } from './oauth-error.js'

export type TokenEndpointAuthMethod = OAuthClient['tokenEndpointAuthMethod']

/** Registration metadata after validation (RFC 7591 §2), camelCase, defaults applied. */
export interface ValidatedClientMetadata {
  redirectUris: string[]
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  grantTypes: string[]
  responseTypes: string[]
  clientName?: string
  scope?: string
}

export interface ClientRegistration {
  client: OAuthClient
  /** Only for confidential clients; shown once in the registration response, stored hashed. */
  clientSecret?: Secret
}

export interface ClientRegistryService extends ClientRegistry {
  /**
   * Validates RFC 7591 metadata (throws OAuthError invalid_redirect_uri / invalid_client_metadata)
   * and stores the client.
   */
  register(metadata: unknown): Promise<ClientRegistration>
  /** Constant-time comparison of SHA-256 digests; false for public clients. */
  verifyClientSecret(client: OAuthClient, presented: string): boolean
}

export interface ClientRegistryOptions {
  store: Store
  config: Pick<AuthServerConfig, 'scopesSupported' | 'cimd'>
  logger: Logger
  /** Fetch for Client ID Metadata Documents; default `createOutboundFetch({ ssrfGuard: true })`. */
  fetch?: FetchLike
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number
}

const CLIENT_KIND = 'client'
// Registered clients live 90 days after their last use (the longest refresh-token lifespan the
// config allows), renewed at most once a day, so an active client never expires mid-family and an
// abandoned registration does not stay forever. A client that finds itself forgotten gets
// invalid_client and re-registers (what MCP clients do).
export const CLIENT_TTL_MS = 90 * 24 * 3600_000
const CLIENT_RENEW_AFTER_MS = 24 * 3600_000

const MAX_REDIRECT_URIS = 10
const MAX_URI_LENGTH = 2048
const MAX_NAME_LENGTH = 200
const MAX_SCOPE_LENGTH = 1024
const MAX_CLIENT_ID_LENGTH = 2048

const CIMD_TIMEOUT_MS = 5_000
const CIMD_MAX_BYTES = 64 * 1024
const CIMD_MIN_TTL_MS = 5 * 60_000
const CIMD_MAX_TTL_MS = 24 * 3600_000
const CIMD_NEGATIVE_TTL_MS = 60_000
const CIMD_CACHE_ENTRIES = 1_000

const AUTH_METHODS: readonly TokenEndpointAuthMethod[] = [
  'none',
  'client_secret_basic',
  'client_secret_post',
]
const GRANT_TYPES = ['authorization_code', 'refresh_token']
const RESPONSE_TYPES = ['code']
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost'])
// RFC 8252 §7.1: a private-use scheme is a reverse-DNS name the app controls (`com.example.app`),
// so it always has a dot. This also keeps out every dotless scheme that runs code or reads local
// data (`javascript:`, `data:`, `file:`, `blob:`, ...) and squatted single words (`x-evil:`).
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/
// RFC 6749 §3.3 scope-token.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

const metadataError = (description: string) =>
  new OAuthError('invalid_client_metadata', description)
const redirectError = (description: string) => new OAuthError('invalid_redirect_uri', description)
// Descriptions may name a client-supplied value: short, and in single quotes because RFC 6749
// §5.2 keeps double quotes and backslashes out of error_description (oauthError blanks them).
const quoteValue = (value: string) => `'${value.length > 64 ? `${value.slice(0, 64)}...` : value}'`

function checkRedirectUri(
  raw: unknown,
  index: number,
  privateUseSchemes: ReadonlySet<string>,
): string {
  const at = `redirect_uris[${index}]`
  if (typeof raw !== 'string' || raw.length === 0) {
    throw redirectError(`${at} must be a non-empty string`)
  }
  if (raw.length > MAX_URI_LENGTH) {
    throw redirectError(`${at} is longer than ${MAX_URI_LENGTH} characters`)
  }
  // URL parsing strips whitespace and control characters; the stored string must be what matches.
  if (/[\x00-\x20\x7f]/.test(raw)) {
    throw redirectError(`${at} contains whitespace or control characters`)
  }
  // RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment.
  if (raw.includes('#')) throw redirectError(`${at} must not contain a fragment`)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    // RFC 6749 §3.1.2: the redirection endpoint URI MUST be an absolute URI.
    throw redirectError(`${at} must be an absolute URI`)
  }
  // A userinfo part makes `https://good.example@evil.example` read as good.example to humans.
  if (url.username || url.password) throw redirectError(`${at} must not contain userinfo`)
  // Canonical form only (OAuth 2.1 §2.3.1 compares strings): the URI we match must be the one
  // the browser follows. `http://localhost\@evil.example/cb` parses as a path under localhost
  // here but reads as userinfo to other parsers; `HTTP://127.0.0.1/cb` would match nothing the
  // client sends. Rejected with the canonical form, so the fix is obvious.
  if (url.href !== raw) {
    throw redirectError(`${at} is not in canonical form (it parses as ${quoteValue(url.href)})`)
  }
  if (url.protocol === 'https:') return raw
  if (url.protocol === 'http:') {
    // RFC 8252 §7.3 / OAuth 2.1 §2.3.1: plain http only for loopback redirects.
    if (LOOPBACK_HOSTS.has(url.hostname)) return raw
    throw redirectError(
      `${at} must use https; http is allowed only for 127.0.0.1, [::1] and localhost`,
    )
  }
  // RFC 8252 §7.1: other schemes only as reverse-DNS private-use schemes, or the dotless ones
  // the operator accepts (`registration.privateUseSchemes`, e.g. Cursor's `cursor:`).
  if (!PRIVATE_USE_SCHEME.test(url.protocol) && !privateUseSchemes.has(url.protocol.slice(0, -1))) {
    throw redirectError(
      `${at} uses the scheme ${url.protocol}; only https, loopback http and reverse-DNS private-use schemes such as com.example.app: are allowed (RFC 8252 section 7.1)`,
    )
  }
  return raw
}

function optionalString(
  meta: Record<string, unknown>,
  field: string,
  max: number,
): string | undefined {
  const value = meta[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw metadataError(`${field} must be a string`)
  if (value.length > max) throw metadataError(`${field} is longer than ${max} characters`)
  return value
}

function stringArray(
  meta: Record<string, unknown>,
  field: string,
  fallback: string[],
  allowed: string[],
): string[] {
  const value = meta[field]
  if (value === undefined || value === null) return [...fallback]
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string')) {
    throw metadataError(`${field} must be a non-empty array of strings`)
  }
  const list = [...new Set(value as string[])]
  const unknown = list.find((v) => !allowed.includes(v))
  if (unknown !== undefined) {
    throw metadataError(
      `${field} value ${quoteValue(unknown)} is not supported (supported: ${allowed.join(', ')})`,
    )
  }
  return list
}

/**
 * RFC 7591 §2 validation of client metadata (registration requests and CIMD documents alike).
 * Throws OAuthError `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 §3.2.2) with a
 * description of the first problem. Metadata it does not understand is ignored (RFC 7591 §2).
 */
export function validateClientMetadata(
  metadata: unknown,
  options: {
    scopesSupported: readonly string[]
    registration?: { privateUseSchemes: readonly string[] }
  },
): ValidatedClientMetadata {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw metadataError('client metadata must be a JSON object')
  }
  const meta = metadata as Record<string, unknown>

  // RFC 7591 §2: redirect_uris is required for redirect-based grants (the only ones we serve).
  const uris = meta.redirect_uris
  if (!Array.isArray(uris) || uris.length === 0) {
    throw redirectError('redirect_uris must be a non-empty array')
  }
  if (uris.length > MAX_REDIRECT_URIS) {
    throw redirectError(`at most ${MAX_REDIRECT_URIS} redirect_uris are allowed`)
  }
  const schemes = new Set(options.registration?.privateUseSchemes ?? [])
  const redirectUris = [...new Set(uris.map((u, i) => checkRedirectUri(u, i, schemes)))]

  const method = meta.token_endpoint_auth_method ?? 'none'
  if (typeof method !== 'string' || !(AUTH_METHODS as readonly string[]).includes(method)) {
    throw metadataError(`token_endpoint_auth_method must be one of ${AUTH_METHODS.join(', ')}`)
  }

  const grantTypes = stringArray(meta, 'grant_types', GRANT_TYPES, GRANT_TYPES)
  // The code grant is the only way in; a refresh_token-only client could never get a token.
  if (!grantTypes.includes('authorization_code')) {
    throw metadataError('grant_types must include authorization_code')
  }
  // RFC 7591 §2.1: grant_types authorization_code goes with response_types code.
  const responseTypes = stringArray(meta, 'response_types', RESPONSE_TYPES, RESPONSE_TYPES)

  const scope = optionalString(meta, 'scope', MAX_SCOPE_LENGTH)
  let normalizedScope: string | undefined
  if (scope !== undefined) {
    const tokens = scope.split(' ').filter((s) => s.length > 0)
    for (const token of tokens) {
      if (!SCOPE_TOKEN.test(token) || !options.scopesSupported.includes(token)) {
        throw metadataError(`scope ${quoteValue(token)} is not supported`)
      }
    }
    normalizedScope = [...new Set(tokens)].join(' ')
  }

  const clientName = optionalString(meta, 'client_name', MAX_NAME_LENGTH)
  // Accepted and bounded, but not kept: vmcp shows no consent page that would display them.
  for (const field of ['client_uri', 'logo_uri', 'tos_uri', 'policy_uri'])
    optionalString(meta, field, MAX_URI_LENGTH)

  const result: ValidatedClientMetadata = {
    redirectUris,
    tokenEndpointAuthMethod: method as TokenEndpointAuthMethod,
    grantTypes,
    responseTypes,
  }
  if (clientName !== undefined) result.clientName = clientName
  if (normalizedScope) result.scope = normalizedScope
  return result
}

/** Constant-time check of a presented client secret against the stored SHA-256. */
export function verifyClientSecret(client: OAuthClient, presented: string): boolean {
  if (!client.clientSecretHash) return false
  const expected = Buffer.from(client.clientSecretHash, 'hex')
  const actual = createHash('sha256').update(presented, 'utf8').digest()
  // Comparing digests keeps the comparison length-independent of the presented value.
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

/** Why `raw` cannot be a Client ID Metadata Document URL, or undefined when it can. */
export function checkCimdUrl(raw: string, allowedHosts: readonly string[]): string | undefined {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'not an absolute URL'
  }
  // draft-ietf-oauth-client-id-metadata-document §3: https, a path, no fragment, no userinfo, no
  // dot segments; and we insist on the canonical form, because client_id is compared as a string.
  if (url.protocol !== 'https:') return 'must use https'
  if (raw.includes('#')) return 'must not contain a fragment'
  if (url.username || url.password) return 'must not contain userinfo'
  if (url.pathname === '/' || url.pathname === '') return 'must have a path'
  if (/\/\.{1,2}(\/|$|\?)/.test(raw.slice(url.origin.length))) {
    return 'must not contain dot segments'
  }
  if (url.href !== raw) return 'must be in canonical form'
  if (allowedHosts.length > 0) {
    const allowed = allowedHosts.map((h) => h.toLowerCase())
    if (!allowed.includes(url.hostname) && !allowed.includes(url.host)) {
      return 'host is not in cimd.allowedHosts'
    }
  }
  return undefined
}

function maxAgeMs(cacheControl: string | null): number | undefined {
  const m = cacheControl ? /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl) : null
  return m?.[1] ? Number(m[1]) * 1000 : undefined
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return 'fetch failed'
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
  return `${err.message}${cause}`
}

interface StoredClient {
  client: OAuthClient
  renewedAt: number
}

interface CimdCacheEntry {
  client: OAuthClient | undefined
  expiresAt: number
}

type CimdResult = { ok: true; client: OAuthClient; ttlMs: number } | { ok: false; reason: string }

/**
 * The client registry: RFC 7591 registrations in the Store, and (with `cimd.enabled`) Client ID
 * Metadata Documents fetched from https client_id URLs through the SSRF-guarded fetch, validated
 * like registrations, public clients only, cached in process memory (max-age clamped to
 * 5 min–24 h; failures 60 s). Storage errors propagate (StorageUnavailableError → 503 at the edge).
 */
export function createClientRegistry(options: ClientRegistryOptions): ClientRegistryService {
  const { store, config, logger } = options
  const now = options.now ?? Date.now
  const cimdEnabled = config.cimd.enabled
  const fetchFn =
    options.fetch ??
    (cimdEnabled
      ? createOutboundFetch({
          ssrfGuard: true,
          connectTimeoutMs: CIMD_TIMEOUT_MS,
          headersTimeoutMs: CIMD_TIMEOUT_MS,
        })
      : undefined)
  const cimdCache = new Map<string, CimdCacheEntry>()
  const inflight = new Map<string, Promise<OAuthClient | undefined>>()

  async function register(metadata: unknown): Promise<ClientRegistration> {
    const meta = validateClientMetadata(metadata, config)
    const clientId = randomBytes(16).toString('base64url')
    const client: OAuthClient = { clientId, ...meta, createdAt: now() }
    let clientSecret: Secret | undefined
    if (meta.tokenEndpointAuthMethod !== 'none') {
      // 256 random bits; only the SHA-256 is stored, so a store dump yields no usable secret.
      const secret = randomBytes(32).toString('base64url')
      client.clientSecretHash = createHash('sha256').update(secret, 'utf8').digest('hex')
      clientSecret = new Secret(secret)
    }
    const stored: StoredClient = { client, renewedAt: now() }
    if (!(await store.putIfAbsent(CLIENT_KIND, clientId, stored, CLIENT_TTL_MS))) {
      throw new Error('client id collision')
    }
    logger.info(
      {
        client_id: clientId,
        auth_method: client.tokenEndpointAuthMethod,
        redirect_uris: client.redirectUris.length,
      },
      'client registered',
    )
    return clientSecret ? { client, clientSecret } : { client }
  }

  async function getStoredClient(clientId: string): Promise<OAuthClient | undefined> {
    const stored = await store.get<StoredClient>(CLIENT_KIND, clientId)
    if (!stored) return undefined
    if (now() - stored.renewedAt > CLIENT_RENEW_AFTER_MS) {
      await store
        .put(CLIENT_KIND, clientId, { client: stored.client, renewedAt: now() }, CLIENT_TTL_MS)
        .catch((err: unknown) =>
          logger.warn({ client_id: clientId, err: describeError(err) }, 'client renewal failed'),
        )
    }
    return stored.client
  }

  async function fetchCimd(clientId: string): Promise<CimdResult> {
    const fail = (reason: string): CimdResult => ({ ok: false, reason })
    if (!fetchFn) return fail('cimd is disabled')
    const signal = AbortSignal.timeout(CIMD_TIMEOUT_MS)
    const timedOut = new Promise<never>((_, reject) => {
      signal.addEventListener(
        'abort',
        () => reject(new Error(`no answer within ${CIMD_TIMEOUT_MS} ms`)),
        { once: true },
      )
    })
    timedOut.catch(() => undefined)
    try {
      const res = await Promise.race([
        // Redirects are not followed: the document must live at the client_id URL itself.
        fetchFn(clientId, {
          method: 'GET',
          redirect: 'manual',
          headers: { accept: 'application/json' },
          signal,
        }),
        timedOut,
      ])
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined)
        return fail(
          res.status >= 300 && res.status < 400
            ? 'document URL redirects'
            : `document answered HTTP ${res.status}`,
        )
      }
      const body = await Promise.race([readStreamLimited(res.body, CIMD_MAX_BYTES), timedOut])
      if (!body) return fail(`document is larger than ${CIMD_MAX_BYTES} bytes`)
      let doc: unknown
      try {
        doc = JSON.parse(body.toString('utf8'))
      } catch {
        return fail('document is not valid JSON')
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
        return fail('document is not a JSON object')
      }
      const record = doc as Record<string, unknown>
      // draft-ietf-oauth-client-id-metadata-document §4.1: client_id equals the URL exactly.
      if (record.client_id !== clientId) {
        return fail('client_id in the document does not equal its URL')
      }
      // A document is public; a shared secret in it would be no secret (draft §4.1).
      if ('client_secret' in record || 'client_secret_expires_at' in record) {
        return fail('document must not contain client_secret')
      }
      let meta: ValidatedClientMetadata
      try {
        meta = validateClientMetadata(record, config)
      } catch (err) {
        return fail(
          err instanceof OAuthError ? `${err.error}: ${err.description ?? ''}` : 'invalid metadata',
        )
      }
      if (meta.tokenEndpointAuthMethod !== 'none') {
        return fail('token_endpoint_auth_method must be none')
      }
      const ttlMs = Math.min(
        CIMD_MAX_TTL_MS,
        Math.max(CIMD_MIN_TTL_MS, maxAgeMs(res.headers.get('cache-control')) ?? 0),
      )
      return { ok: true, client: { clientId, ...meta, cimd: true, createdAt: now() }, ttlMs }
    } catch (err) {
      return fail(describeError(err))
    }
  }

  function remember(clientId: string, entry: CimdCacheEntry): void {
    cimdCache.delete(clientId)
    if (cimdCache.size >= CIMD_CACHE_ENTRIES) {
      const oldest = cimdCache.keys().next().value
      if (oldest !== undefined) cimdCache.delete(oldest)
    }
    cimdCache.set(clientId, entry)
  }

  async function getCimdClient(clientId: string): Promise<OAuthClient | undefined> {
    const urlProblem = checkCimdUrl(clientId, config.cimd.allowedHosts)
    if (urlProblem) {
      logger.info(
        { client_id: clientId, reason: urlProblem },
        'client ID metadata document URL rejected',
      )
      return undefined
    }
    const cached = cimdCache.get(clientId)
    if (cached && cached.expiresAt > now()) return cached.client
    const running = inflight.get(clientId)
    if (running) return running
    // One fetch per URL at a time, however many requests name it.
    const pending = fetchCimd(clientId)
      .then((result) => {
        if (result.ok) {
          remember(clientId, { client: result.client, expiresAt: now() + result.ttlMs })
          logger.debug(
            { client_id: clientId, ttl_ms: result.ttlMs },
            'client ID metadata document accepted',
          )
          return result.client
        }
        remember(clientId, { client: undefined, expiresAt: now() + CIMD_NEGATIVE_TTL_MS })
        logger.info(
          { client_id: clientId, reason: result.reason },
          'client ID metadata document rejected',
        )
        return undefined
      })
      .finally(() => inflight.delete(clientId))
    inflight.set(clientId, pending)
    return pending
  }

  return {
    register,
    verifyClientSecret,
    async getClient(clientId) {
      if (
        typeof clientId !== 'string' ||
        clientId.length === 0 ||
        clientId.length > MAX_CLIENT_ID_LENGTH
      )
        return undefined
      if (cimdEnabled && clientId.startsWith('https://')) return getCimdClient(clientId)
      return getStoredClient(clientId)
    },
  }
}
