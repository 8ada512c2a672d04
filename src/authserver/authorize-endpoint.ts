import { createHash, randomBytes } from 'node:crypto'
import { Hono, type Context } from 'hono'
import * as oauth from 'oauth4webapi'
import type { AuthServerConfig, UpstreamConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import { readStreamLimited } from '../net/index.js'
import { hashId, StorageUnavailableError, type Store } from '../storage/index.js'
import { bindingHash, sameDigest, type BrowserCookies, type ConsentMemory } from './consent.js'
import type { ClientRegistry, OAuthClient } from './contracts.js'
import { authServerPaths } from './metadata.js'
import { consentPage, errorPage } from './pages.js'
import type { PendingAdmission } from './pending-limit.js'
import { matchRedirectUri } from './redirect-uri.js'
import { describeError, UpstreamAuthError, type UpstreamClient } from './upstreams.js'

/** Store kind of an authorization in progress; id = SHA-256 (hex) of the upstream `state`. */
export const PENDING_AUTHORIZATION_KIND = 'pending-authorization'

/** Store kind of a request waiting for the person's decision; id = SHA-256 (hex) of its id. */
export const PENDING_CONSENT_KIND = 'pending-consent'

/** A validated authorization request (what the client asked for). */
export interface AuthorizationRequest {
  clientId: string
  redirectUri: string
  /** The client's own `state`, echoed back to it; absent when it sent none. */
  state?: string
  codeChallenge: string
  scope: string
  resource: string
  /** The client's OIDC `nonce`, echoed in vmcp's ID token (OIDC Core §3.1.2.1). */
  nonce?: string
}

/** Between the consent page and its POST: kept server-side, never re-read from the form. */
interface PendingConsent {
  request: AuthorizationRequest
  clientName?: string
  /** SHA-256 (hex) of the browser's transaction cookie. */
  browser: string
  /** SHA-256 (hex) of the page's CSRF token. */
  csrf: string
}

/** An authorization walking the upstream chain: stored by /oauth/authorize and each callback. */
export interface PendingAuthorization extends AuthorizationRequest {
  /** SHA-256 (hex) of the transaction cookie of the browser that started it. */
  browser: string
  tsid: string
  /** Index into the upstream chain of the leg in progress. */
  upstreamIndex: number
  /** PKCE verifier and nonce of the leg in progress, by upstream name. */
  legs: Record<string, { codeVerifier: string; nonce: string }>
  /** Identity, fixed by the first upstream. */
  subject?: string
  name?: string
  email?: string
  /** ID token issuer of the first upstream (oidc), for identity continuity across legs. */
  identityIssuer?: string
}

/** The parts of `authServer.runConfig` the authorization endpoint reads. */
export type AuthorizeConfig = Pick<
  AuthServerConfig,
  'issuer' | 'allowedAudiences' | 'scopesSupported' | 'tokenLifespans' | 'consent' | 'upstreams'
>

export interface AuthorizeAppOptions {
  config: AuthorizeConfig
  registry: ClientRegistry
  /** Upstream clients in chain order; the first one decides the identity. */
  upstreams: readonly UpstreamClient[]
  store: Store
  /** Browser binding and remembered consent. */
  cookies: BrowserCookies
  logger: Logger
  /** Bounds the sign-ins in progress (pending-limit.ts); runs just before one is stored. */
  admitPending?: PendingAdmission
}

/** The consent form's POST target under the issuer's path. */
export function consentPath(issuer: string): string {
  return authServerPaths(issuer).consent
}

const MAX_CONSENT_FORM_BYTES = 4096

// RFC 7636 §4.2: BASE64URL(SHA-256(verifier)) is always 43 characters.
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/
// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/** Random, unguessable identifier: 256 bits, base64url. */
export function randomId(): string {
  return randomBytes(32).toString('base64url')
}

/** Store id of a pending authorization: the state is a bearer secret, so never a key itself. */
export function pendingId(state: string): string {
  return createHash('sha256').update(state).digest('hex')
}

/**
 * Starts the leg at `upstreams[pending.upstreamIndex]`: fresh state, PKCE verifier and nonce,
 * stored with the pending authorization for `ttlMs`. Returns the upstream authorization URL.
 */
export async function beginUpstreamLeg(
  store: Store,
  upstream: UpstreamClient,
  pending: PendingAuthorization,
  ttlMs: number,
): Promise<URL> {
  const state = randomId()
  const codeVerifier = oauth.generateRandomCodeVerifier()
  const nonce = oauth.generateRandomNonce()
  // The URL first: if the upstream cannot be discovered nothing is stored.
  const url = await upstream.authorizationUrl({ state, codeVerifier, nonce })
  const legs = { [upstream.name]: { codeVerifier, nonce } }
  const record: PendingAuthorization = { ...pending, legs }
  await store.put(PENDING_AUTHORIZATION_KIND, pendingId(state), record, ttlMs)
  return url
}

/**
 * The client's redirect URI with response parameters added to its query. RFC 6749 §3.1.2: an
 * existing query is kept as written, so it is appended to rather than re-serialized.
 */
export function buildClientRedirect(
  redirectUri: string,
  params: Record<string, string | undefined>,
): string {
  const query = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined) query.set(k, v)
  const q = redirectUri.indexOf('?')
  if (q === -1) return `${redirectUri}?${query.toString()}`
  const existing = redirectUri.slice(q + 1)
  const sep = existing === '' || existing.endsWith('&') ? '' : '&'
  return `${redirectUri}${sep}${query.toString()}`
}

/**
 * An error rendered to the user agent, never redirected (the redirect target is not trusted): an
 * HTML page for a browser (`Accept: text/html`), the RFC 6749 §5.2 JSON shape otherwise.
 */
export function renderOAuthError(
  c: Context,
  status: 400 | 503,
  error: string,
  description: string,
): Response {
  if ((c.req.header('accept') ?? '').includes('text/html')) {
    const heading = status === 503 ? 'Sign-in is unavailable' : 'This sign-in request is not valid'
    return errorPage(c, status, heading, `${description}.`, error)
  }
  return c.json({ error, error_description: description }, status, {
    'Cache-Control': 'no-store',
  })
}

/** Storage down: 503 to the user agent (never a redirect); anything else propagates. */
export function storageDown(c: Context, err: unknown): Response {
  if (err instanceof StorageUnavailableError) {
    return renderOAuthError(c, 503, 'temporarily_unavailable', 'try again later')
  }
  throw err
}

/** The 400 page of a sign-in step arriving from another browser than the one that started it. */
export function renderOtherBrowser(c: Context): Response {
  return errorPage(
    c,
    400,
    'This sign-in was started in another browser',
    'For your safety, a sign-in must finish in the browser where it started. Go back to the application and start the sign-in again from this browser.',
    'invalid_request',
  )
}

/** A 302 to the client; response parameters travel in the query, so nothing may cache it. */
export function redirectTo(c: Context, location: string): Response {
  c.header('Cache-Control', 'no-store')
  return c.redirect(location, 302)
}

/** The host a person will see in the address bar at an upstream sign-in. */
function upstreamHost(u: UpstreamConfig): string {
  // An oauth2 upstream set up by discovery (dcr.discoveryUrl) has its endpoints only at runtime.
  const url =
    u.type === 'oidc'
      ? u.oidc.issuerUrl
      : (u.oauth2.authorizationEndpoint ?? u.oauth2.dcr?.discoveryUrl ?? '')
  return URL.canParse(url) ? new URL(url).host : u.name
}

/**
 * `GET /oauth/authorize`: validates the client's authorization request (OAuth 2.1 §4.1.1, PKCE
 * S256 only, RFC 8707 resource), mints the session id `tsid`, and sends the user agent to the
 * first upstream identity provider. The chain continues at `/oauth/callback`.
 *
 * Errors found before the client and its redirect URI are known to be good are a 400 JSON page;
 * later errors go back to the redirect URI with `error`, `state` and `iss` (RFC 9207).
 */
export function createAuthorizeApp(options: AuthorizeAppOptions): Hono {
  const { config, registry, upstreams, store, cookies } = options
  const log = options.logger.child({ component: 'authserver.authorize' })
  const app = new Hono()
  const supportedScopes = new Set(config.scopesSupported)
  const trustedClients = new Set(config.consent.trustedClients)
  const ttlMs = config.tokenLifespans.authCode
  const serviceHost = new URL(config.issuer).host
  const upstreamHosts = config.upstreams.map((u) => ({ name: u.name, host: upstreamHost(u) }))

  /** Stores the approved request and sends the browser to the first upstream. */
  async function startChain(
    c: Context,
    request: AuthorizationRequest,
    browser: string,
    fail: (error: string, description: string) => Response,
  ): Promise<Response> {
    const first = upstreams[0]
    if (!first) return fail('server_error', 'no upstream identity provider configured')
    // One session id for the whole chain; ≥ 128 bits so it cannot be guessed (RFC 6749 §10.10).
    const tsid = randomId()
    const pending: PendingAuthorization = { ...request, browser, tsid, upstreamIndex: 0, legs: {} }
    let location: URL
    try {
      location = await beginUpstreamLeg(store, first, pending, ttlMs)
    } catch (err) {
      log.warn(
        { clientId: request.clientId, upstream: first.name, err: describeError(err) },
        'could not start the upstream sign-in',
      )
      return err instanceof StorageUnavailableError
        ? fail('temporarily_unavailable', 'try again later')
        : err instanceof UpstreamAuthError && err.unavailable
          ? fail('temporarily_unavailable', `${err.message}; try again later`)
          : fail('server_error', `sign-in at upstream ${first.name} is not available`)
    }
    const tsidFp = fingerprint(tsid)
    log.debug({ clientId: request.clientId, upstream: first.name, tsidFp }, 'authorization started')
    return redirectTo(c, location.href)
  }

  /** The client's redirect URI with `error`, `state` and RFC 9207 §2 `iss`. */
  const errorRedirect =
    (c: Context, request: Pick<AuthorizationRequest, 'redirectUri' | 'state'>) =>
    (error: string, description: string) =>
      redirectTo(
        c,
        buildClientRedirect(request.redirectUri, {
          error,
          error_description: description,
          state: request.state,
          iss: config.issuer,
        }),
      )

  app.get(authServerPaths(config.issuer).authorize, async (c) => {
    const q = new URL(c.req.url).searchParams
    // RFC 6749 §3.1: a parameter sent without a value is treated as omitted; none may repeat.
    const all = (name: string) => q.getAll(name).filter((v) => v !== '')
    const repeated = (name: string) => all(name).length > 1
    const one = (name: string) => all(name)[0]

    // ---- client and redirect URI: until both are known-good, nothing is redirected ----

    // RFC 6749 §4.1.2.1: an invalid client or redirect URI must not cause a redirect (open
    // redirector, RFC 9700 §4.11); the user agent gets the error instead.
    const reject = (error: string, description: string) =>
      renderOAuthError(c, 400, error, description)
    if (repeated('client_id')) return reject('invalid_request', 'client_id must not be repeated')
    const clientId = one('client_id')
    if (clientId === undefined) return reject('invalid_request', 'client_id is required')
    let client: OAuthClient | undefined
    try {
      client = await registry.getClient(clientId)
    } catch (err) {
      return storageDown(c, err)
    }
    if (!client) return reject('invalid_client', 'unknown client_id')

    if (repeated('redirect_uri')) {
      return reject('invalid_request', 'redirect_uri must not be repeated')
    }
    let redirectUri = one('redirect_uri')
    if (redirectUri === undefined) {
      // OAuth 2.1 §2.3.2: may be omitted only when the client registered exactly one.
      const [only, ...others] = client.redirectUris
      if (only === undefined || others.length > 0) {
        return reject('invalid_request', 'redirect_uri is required')
      }
      redirectUri = only
    } else if (!matchRedirectUri(client.redirectUris, redirectUri)) {
      // OAuth 2.1 §2.3.1: exact match (RFC 8252 §7.3 loopback ports aside).
      log.debug({ clientId }, 'authorization request with an unregistered redirect_uri')
      return reject('invalid_request', 'redirect_uri is not registered for this client')
    }

    // ---- from here on, errors may go back to the client, once the person has approved it ----

    const target = redirectUri
    const clientState = repeated('state') ? undefined : one('state')
    // A pre-registered first-party client the operator trusts, or one this browser approved.
    const trusted = trustedClients.has(clientId)
    const memory: ConsentMemory = cookies.readConsent(c)
    const approvedBefore = trusted || memory.knowsClient(clientId, target)
    const toClient = errorRedirect(c, {
      redirectUri: target,
      ...(clientState !== undefined ? { state: clientState } : {}),
    })
    const fail = (error: string, description: string) => {
      log.debug({ clientId, error, description }, 'authorization request rejected')
      // RFC 9700 §4.11.2: anyone can register a client (DCR) or publish one (CIMD), so until the
      // person has approved it, its redirect URI is not trusted with an error redirect: that would
      // make vmcp an open redirector. RFC 6749 §4.1.2.1 redirects for trusted clients only.
      if (!approvedBefore) return renderOAuthError(c, 400, error, description)
      return toClient(error, description)
    }

    const single = [
      'state',
      'response_type',
      'code_challenge',
      'code_challenge_method',
      'scope',
      'nonce',
    ]
    for (const name of single) {
      if (repeated(name)) return fail('invalid_request', `${name} must not be repeated`)
    }

    const responseType = one('response_type')
    if (responseType === undefined) return fail('invalid_request', 'response_type is required')
    // OAuth 2.1 §4.1.1: the authorization code flow only.
    if (responseType !== 'code') {
      return fail('unsupported_response_type', 'response_type must be code')
    }
    const { responseTypes, grantTypes } = client
    if (!responseTypes.includes('code') || !grantTypes.includes('authorization_code')) {
      const why = 'client is not registered for the authorization code grant'
      return fail('unauthorized_client', why)
    }

    // OAuth 2.1 §4.1.1 / RFC 7636 §4.3: PKCE is required, and only S256 (plain would hand the
    // verifier to anyone who sees the authorization request). An absent method means plain.
    const codeChallenge = one('code_challenge')
    if (codeChallenge === undefined) {
      return fail('invalid_request', 'code_challenge is required (PKCE)')
    }
    if (one('code_challenge_method') !== 'S256') {
      return fail('invalid_request', 'code_challenge_method must be S256')
    }
    if (!S256_CHALLENGE.test(codeChallenge)) {
      return fail('invalid_request', 'code_challenge must be 43 base64url characters (S256)')
    }

    // RFC 6749 §3.3: absent scope means the client's registered scope, else none.
    const requested = (one('scope') ?? client.scope ?? '').split(' ').filter((s) => s !== '')
    const scopes = [...new Set(requested)]
    const registeredScopes =
      client.scope === undefined ? undefined : new Set(client.scope.split(' '))
    for (const s of scopes) {
      if (!SCOPE_TOKEN.test(s) || !supportedScopes.has(s)) {
        return fail('invalid_scope', `unsupported scope: ${s.slice(0, 64)}`)
      }
      // RFC 7591 §2: the registered scope bounds what the client may ask for.
      if (registeredScopes && !registeredScopes.has(s)) {
        return fail('invalid_scope', `scope not registered for this client: ${s.slice(0, 64)}`)
      }
    }

    // RFC 8707 §2: the resource becomes the token's audience; only configured audiences.
    const resources = all('resource')
    let resource: string
    if (resources.length > 1) {
      return fail('invalid_target', 'multiple resource parameters are not supported')
    } else if (resources[0] !== undefined) {
      if (!config.allowedAudiences.includes(resources[0])) {
        return fail('invalid_target', 'resource is not a registered audience')
      }
      resource = resources[0]
    } else if (config.allowedAudiences.length === 1 && config.allowedAudiences[0] !== undefined) {
      resource = config.allowedAudiences[0]
    } else {
      return fail('invalid_target', 'resource is required')
    }

    // OIDC Core §3.1.2.1: the nonce goes into the ID token unmodified; bounded, it is stored.
    const nonce = one('nonce')
    if (nonce !== undefined && nonce.length > 512) {
      return fail('invalid_request', 'nonce must be at most 512 characters')
    }
    const request: AuthorizationRequest = {
      clientId,
      redirectUri: target,
      ...(clientState !== undefined ? { state: clientState } : {}),
      ...(nonce !== undefined ? { nonce } : {}),
      codeChallenge,
      scope: scopes.join(' '),
      resource,
    }
    // Every request that stores a sign-in (a pending consent, or straight away a pending
    // authorization) counts; shown to the user agent, not redirected: the client did nothing wrong.
    const refused = await options.admitPending?.(c)
    if (refused) return refused
    // Browser binding: every later step of this sign-in must come from this browser.
    const browser = bindingHash(cookies.bind(c))
    const subject = {
      ...request,
      ...(client.clientName !== undefined ? { clientName: client.clientName } : {}),
    }
    if (trusted || memory.covers(subject)) return startChain(c, request, browser, toClient)

    // ---- MCP security best practices, "Confused Deputy Problem": ask the person first ----

    const consentId = randomId()
    const csrf = randomId()
    const waiting: PendingConsent = {
      request,
      ...(client.clientName !== undefined ? { clientName: client.clientName } : {}),
      browser,
      csrf: hashId(csrf),
    }
    try {
      await store.put(PENDING_CONSENT_KIND, hashId(consentId), waiting, ttlMs)
    } catch (err) {
      return storageDown(c, err)
    }
    log.debug({ clientId, consentFp: fingerprint(consentId) }, 'consent requested')
    return consentPage(c, {
      serviceHost,
      clientName: client.clientName,
      clientId,
      cimdHost: client.cimd ? new URL(clientId).host : undefined,
      redirectUri: target,
      scopes,
      resource,
      upstreams: upstreamHosts,
      action: consentPath(config.issuer),
      consentId,
      csrf,
    })
  })

  app.post(consentPath(config.issuer), async (c) => {
    const refuse = (status: 400 | 403, heading: string, message: string) =>
      errorPage(c, status, heading, message, 'invalid_request')
    // Defense in depth on top of the CSRF token: a browser names the page that posted.
    const origin = c.req.header('origin')
    const site = c.req.header('sec-fetch-site')
    // `Origin: null` (privacy settings, no-referrer policies) proves nothing either way; the CSRF
    // token and the browser binding still decide.
    if (
      (origin !== undefined && origin !== 'null' && origin !== new URL(config.issuer).origin) ||
      (site !== undefined && site !== 'same-origin')
    ) {
      log.debug({ origin, site }, 'consent POST from another origin refused')
      return refuse(
        403,
        'This approval did not come from this site',
        'Start the sign-in again from your application.',
      )
    }
    const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
    const raw =
      type === 'application/x-www-form-urlencoded'
        ? await readStreamLimited(c.req.raw.body, MAX_CONSENT_FORM_BYTES)
        : undefined
    const form = new URLSearchParams(raw?.toString('utf8') ?? '')
    const field = (name: string) => {
      const values = form.getAll(name)
      return values.length === 1 ? values[0] : undefined
    }
    const consentId = field('consent')
    const csrf = field('csrf')
    const decision = field('decision')
    const expired = () =>
      refuse(
        400,
        'This sign-in request has expired',
        'It was already answered or took too long. Start the sign-in again from your application.',
      )
    if (consentId === undefined || consentId === '') return expired()

    let waiting: PendingConsent | undefined
    try {
      // Read, not take: a request that fails the checks below must stay for the real browser.
      waiting = await store.get<PendingConsent>(PENDING_CONSENT_KIND, hashId(consentId))
    } catch (err) {
      return storageDown(c, err)
    }
    if (!waiting) return expired()
    const consentFp = fingerprint(consentId)
    const { request } = waiting
    if (!sameDigest(cookies.bindingOf(c), waiting.browser)) {
      log.warn(
        { clientId: request.clientId, consentFp },
        'consent answered from another browser; refused',
      )
      return renderOtherBrowser(c)
    }
    if (csrf === undefined || !sameDigest(hashId(csrf), waiting.csrf)) {
      log.warn(
        { clientId: request.clientId, consentFp },
        'consent POST with a wrong CSRF token; refused',
      )
      return refuse(
        403,
        'This approval could not be verified',
        'Start the sign-in again from your application.',
      )
    }
    if (decision !== 'approve' && decision !== 'deny') {
      return refuse(400, 'No decision was made', 'Choose Allow or Deny on the consent page.')
    }
    try {
      // Single use: of two racing POSTs, exactly one goes on.
      if (!(await store.take(PENDING_CONSENT_KIND, hashId(consentId)))) return expired()
    } catch (err) {
      return storageDown(c, err)
    }

    const toClient = errorRedirect(c, request)
    if (decision === 'deny') {
      log.info({ clientId: request.clientId, consentFp }, 'consent denied')
      // RFC 6749 §4.1.2.1: the resource owner denied the request.
      return toClient('access_denied', 'the user denied the request')
    }
    log.info({ clientId: request.clientId, consentFp }, 'consent given')
    const subject = {
      ...request,
      ...(waiting.clientName !== undefined ? { clientName: waiting.clientName } : {}),
    }
    cookies.rememberConsent(c, cookies.readConsent(c), subject)
    return startChain(c, request, waiting.browser, toClient)
  })

  return app
}
