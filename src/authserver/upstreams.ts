import * as oauth from 'oauth4webapi'
import type { UpstreamConfig } from '../config/index.js'
import { DcrUnavailableError, type DcrClient, type DcrManager } from '../dcr/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import { isLoopbackHost, readLimitedText, type FetchLike } from '../net/index.js'

/** What one upstream leg (code exchange or refresh) yields. Bearer secrets: never log them. */
export interface UpstreamTokenSet {
  accessToken: string
  refreshToken?: string
  idToken?: string
  /** Epoch ms; undefined when the upstream sent no `expires_in` (treated as non-expiring). */
  expiresAt?: number
  /** The user at this upstream: ID token `sub` (oidc) or the configured userinfo field (oauth2). */
  subject?: string
  name?: string
  /** Only an address the upstream says it verified (`email_verified: true`). */
  email?: string
  /** Issuer of the validated ID token (oidc only): lets the chain compare identities. */
  issuer?: string
}

/** Per-leg secrets the caller generates, keeps server-side, and hands back at the callback. */
export interface UpstreamLegSecrets {
  state: string
  codeVerifier: string
  nonce: string
}

/** One configured upstream identity provider, driven with oauth4webapi. */
export interface UpstreamClient {
  readonly name: string
  readonly type: 'oidc' | 'oauth2'
  /** Authorization request URL (PKCE S256 always; `nonce` for oidc). Discovers lazily for oidc. */
  authorizationUrl(secrets: UpstreamLegSecrets): Promise<URL>
  /**
   * Validates the authorization response (state, RFC 9207 `iss`), redeems the code (PKCE; nonce
   * and ID token for oidc) and resolves the identity. Throws UpstreamAuthError.
   */
  exchangeCode(
    callbackParams: URLSearchParams | URL,
    secrets: UpstreamLegSecrets,
  ): Promise<UpstreamTokenSet>
  /** refresh_token grant; carries the rotated refresh token when the upstream sent one. */
  refresh(refreshToken: string, signal?: AbortSignal): Promise<UpstreamTokenSet>
  /**
   * RFC 7009 revocation of the given tokens at the upstream, when its metadata advertises a
   * `revocation_endpoint`; false when it does not. Throws UpstreamAuthError when a request fails.
   */
  revoke(tokens: { accessToken?: string; refreshToken?: string }): Promise<boolean>
}

export interface UpstreamClientsOptions {
  /** The one outbound fetch (`createOutboundFetch()`), handed to oauth4webapi. */
  fetch: FetchLike
  logger: Logger
  /** `${issuer}/oauth/callback`: registered at every upstream. */
  callbackUrl: string
  /** Upper bound on each upstream HTTP request. Default 10 s. */
  timeoutMs?: number
  /** Clock in epoch ms (token expiry). Default `Date.now`. */
  now?: () => number
  /** Credentials of upstreams configured with `dcr` (RFC 7591): they replace clientId/secret. */
  dcr?: DcrManager
}

/**
 * A failed upstream leg. `reason` picks the error the client gets: `access_denied` when the
 * upstream said no, `server_error` for everything else. The message is safe to log and never
 * carries a token, code or response body.
 */
export class UpstreamAuthError extends Error {
  /** RFC 6749 §5.2 invalid_grant on a refresh: that refresh token will never work again. */
  readonly permanent: boolean
  /** The upstream cannot be used at all right now (dynamic registration not done or failed). */
  readonly unavailable: boolean

  constructor(
    readonly upstream: string,
    readonly reason: 'access_denied' | 'server_error',
    message: string,
    options: { permanent?: boolean; unavailable?: boolean } = {},
  ) {
    super(`upstream ${upstream}: ${message}`)
    this.name = 'UpstreamAuthError'
    this.permanent = options.permanent ?? false
    this.unavailable = options.unavailable ?? false
  }
}

const MAX_USERINFO_BYTES = 64 * 1024

/** One UpstreamClient per configured upstream, in chain order. Nothing touches the network yet. */
export function createUpstreamClients(
  upstreams: readonly UpstreamConfig[],
  options: UpstreamClientsOptions,
): UpstreamClient[] {
  return upstreams.map((u) => createUpstreamClient(u, options))
}

function createUpstreamClient(
  config: UpstreamConfig,
  options: UpstreamClientsOptions,
): UpstreamClient {
  const { name } = config
  const now = options.now ?? Date.now
  const timeoutMs = options.timeoutMs ?? 10_000
  const log = options.logger.child({ component: 'authserver.upstream', upstream: name })
  const settings = config.type === 'oidc' ? config.oidc : config.oauth2
  const registration = settings.dcr ? options.dcr?.upstream(name) : undefined
  if (settings.dcr && !registration) throw new TypeError(`upstream ${name}: dcr is configured but no DcrManager was given`)
  const staticClient: oauth.Client = { client_id: settings.clientId ?? '' }
  // OAuth 2.1 §2.4: a confidential client authenticates; without a secret it is public and PKCE
  // alone binds the code to us.
  const staticAuth = settings.clientSecret
    ? oauth.ClientSecretBasic(settings.clientSecret.reveal())
    : oauth.None()

  /**
   * The client as of now: the configured one, or the current registration (which a renewal or a
   * re-registration may replace). A registering upstream that is not registered yet throws
   * UpstreamAuthError naming why, so the user who needs it gets a clear error.
   */
  function credentials(): { client: oauth.Client; clientAuth: oauth.ClientAuth; server?: DcrClient['server'] } {
    if (!registration) return { client: staticClient, clientAuth: staticAuth }
    let c
    try {
      c = registration.client()
    } catch (err) {
      const reason = err instanceof DcrUnavailableError ? err.reason : describeError(err)
      throw new UpstreamAuthError(name, 'server_error', `not available: ${reason}`, { unavailable: true })
    }
    // RFC 7591 §2: authenticate the way the registration answered.
    const clientAuth =
      c.tokenEndpointAuthMethod === 'client_secret_post' && c.clientSecret
        ? oauth.ClientSecretPost(c.clientSecret)
        : c.tokenEndpointAuthMethod === 'client_secret_basic' && c.clientSecret
          ? oauth.ClientSecretBasic(c.clientSecret)
          : oauth.None()
    return { client: { client_id: c.clientId }, clientAuth, server: c.server }
  }

  /** invalid_client at the token endpoint: let the registration recover; true means retry. */
  async function recoverInvalidClient(err: unknown, clientId: string): Promise<boolean> {
    if (!registration || !(err instanceof oauth.ResponseBodyError) || err.error !== 'invalid_client') return false
    return registration.onInvalidClient(clientId)
  }
  // RFC 8707 §2: the resource the upstream's tokens are for, on every authorize, token and refresh.
  const resourceParams = settings.resource ? { additionalParameters: { resource: settings.resource } } : {}

  // OAuth 2.1 §1.5: TLS everywhere; oauth4webapi refuses http, and we lift that only for loopback
  // http (the same exception the config schema allows).
  const isLoopbackHttp = (url: string | URL | undefined) => {
    if (url === undefined) return false
    const u = new URL(url)
    return u.protocol === 'http:' && isLoopbackHost(u.hostname)
  }
  const request = (url: string | URL | undefined, signal?: AbortSignal) => {
    const timeout = AbortSignal.timeout(timeoutMs)
    return {
      [oauth.customFetch]: options.fetch,
      ...(isLoopbackHttp(url) ? { [oauth.allowInsecureRequests]: true } : {}),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    }
  }

  // ---- authorization server metadata ----

  let metadata: oauth.AuthorizationServer | undefined
  let pending: Promise<oauth.AuthorizationServer> | undefined

  async function discover(issuerUrl: string): Promise<oauth.AuthorizationServer> {
    const issuer = new URL(issuerUrl)
    let response: Response
    try {
      response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...request(issuer) })
    } catch (err) {
      throw new UpstreamAuthError(name, 'server_error', `discovery failed: ${describeError(err)}`)
    }
    try {
      // OIDC Discovery §4.3 / RFC 8414 §3.3: the document's issuer must be the one we asked for.
      return await oauth.processDiscoveryResponse(issuer, response)
    } catch (err) {
      const detail = `invalid discovery document: ${describeError(err)}`
      throw new UpstreamAuthError(name, 'server_error', detail)
    }
  }

  function getMetadata(): Promise<oauth.AuthorizationServer> {
    if (metadata) return Promise.resolve(metadata)
    if (config.type === 'oauth2' && registration) {
      // Discovered (or configured) with the registration; read on every use, never cached here.
      const server = credentials().server as DcrClient['server']
      return Promise.resolve({
        issuer: server.issuer,
        authorization_endpoint: server.authorization_endpoint,
        token_endpoint: server.token_endpoint,
        ...(server.revocation_endpoint ? { revocation_endpoint: server.revocation_endpoint } : {}),
        ...(server.authorization_response_iss_parameter_supported
          ? { authorization_response_iss_parameter_supported: true }
          : {}),
      })
    }
    if (config.type === 'oauth2') {
      const c = config.oauth2
      // No metadata for a plain OAuth 2.0 upstream: the operator named its endpoints. oauth4webapi
      // needs an issuer string; this one is never compared (exchangeCode drops `iss` and ID
      // tokens for oauth2 upstreams).
      metadata = {
        issuer: new URL(c.authorizationEndpoint as string).origin,
        authorization_endpoint: c.authorizationEndpoint as string,
        token_endpoint: c.tokenEndpoint as string,
        ...(c.revocationEndpoint ? { revocation_endpoint: c.revocationEndpoint } : {}),
      }
      return Promise.resolve(metadata)
    }
    // Lazy and cached: startup must not depend on the IdP being up; a failed discovery is retried
    // by the next sign-in rather than remembered.
    pending ??= discover(config.oidc.issuerUrl).then(
      (as) => {
        metadata = as
        pending = undefined
        log.debug({ issuer: as.issuer }, 'upstream discovered')
        return as
      },
      (err: unknown) => {
        pending = undefined
        throw err
      },
    )
    return pending
  }

  const scopes =
    config.type === 'oidc'
      ? // OIDC Core §3.1.2.1: without `openid` there is no ID token, and so no identity.
        config.oidc.scopes.includes('openid')
        ? config.oidc.scopes
        : ['openid', ...config.oidc.scopes]
      : config.oauth2.scopes

  // ---- responses ----

  /**
   * An oauth2 upstream has no metadata: no issuer, no JWKS. An ID token it sends anyway cannot be
   * validated, so it is dropped before oauth4webapi sees it, and never used.
   */
  async function withoutIdToken(response: Response): Promise<Response> {
    if (config.type !== 'oauth2' || response.status !== 200) return response
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    if (typeof json === 'object' && json !== null && 'id_token' in json) {
      delete (json as Record<string, unknown>).id_token
    }
    return new Response(json === undefined ? text : JSON.stringify(json), {
      status: response.status,
      headers: { 'content-type': response.headers.get('content-type') ?? 'application/json' },
    })
  }

  function tokenFailure(err: unknown, what: string, permanent = false): UpstreamAuthError {
    if (err instanceof UpstreamAuthError) return err
    // oauth4webapi errors keep response bodies in `cause`; only the code and fixed message leave.
    const detail =
      err instanceof oauth.ResponseBodyError
        ? `${err.error.slice(0, 64)} (HTTP ${err.status})`
        : err instanceof oauth.WWWAuthenticateChallengeError
          ? `HTTP ${err.status} challenge`
          : describeError(err)
    return new UpstreamAuthError(name, 'server_error', `${what} failed: ${detail}`, { permanent })
  }

  function toTokenSet(result: oauth.TokenEndpointResponse): UpstreamTokenSet {
    // RFC 6750: we forward the access token as a Bearer token; a DPoP-bound one would be useless.
    if (result.token_type !== 'bearer') {
      const detail = `token_type ${result.token_type.slice(0, 20)} is not Bearer`
      throw new UpstreamAuthError(name, 'server_error', detail)
    }
    const set: UpstreamTokenSet = { accessToken: result.access_token }
    if (result.refresh_token) set.refreshToken = result.refresh_token
    if (result.id_token) set.idToken = result.id_token
    // RFC 6749 §5.1: expires_in is RECOMMENDED; without it the token is treated as non-expiring
    // and the first 401 from a backend is the signal to sign in again.
    if (typeof result.expires_in === 'number') set.expiresAt = now() + result.expires_in * 1000
    const claims = oauth.getValidatedIdTokenClaims(result)
    if (claims) {
      set.subject = claims.sub
      set.issuer = claims.iss
      if (typeof claims.name === 'string') set.name = claims.name
      const email = verifiedEmail(claims)
      if (email !== undefined) set.email = email
    }
    return set
  }

  /** oauth2 `userinfo`: GET with the access token as Bearer, fields by the configured names. */
  async function oauth2Identity(set: UpstreamTokenSet): Promise<void> {
    if (config.type !== 'oauth2' || !config.oauth2.userinfo) return
    const { url, subjectField, nameField, emailField } = config.oauth2.userinfo
    let body: string
    try {
      const headers = new Headers({ accept: 'application/json' })
      const res = await oauth.protectedResourceRequest(
        set.accessToken,
        'GET',
        new URL(url),
        headers,
        null,
        request(url),
      )
      if (res.status !== 200) {
        await res.body?.cancel()
        throw new Error(`HTTP ${res.status}`)
      }
      body = await readLimitedText(res, MAX_USERINFO_BYTES)
    } catch (err) {
      const detail = `userinfo request failed: ${describeError(err)}`
      throw new UpstreamAuthError(name, 'server_error', detail)
    }
    let json: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(body)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error()
      json = parsed as Record<string, unknown>
    } catch {
      throw new UpstreamAuthError(name, 'server_error', 'userinfo response is not a JSON object')
    }
    const subject = json[subjectField]
    // GitHub-style APIs return numeric ids; a subject is compared as a string everywhere else.
    if ((typeof subject === 'string' && subject !== '') || typeof subject === 'number') {
      set.subject = String(subject)
    } else {
      throw new UpstreamAuthError(name, 'server_error', `userinfo has no ${subjectField} field`)
    }
    const n = json[nameField]
    const e = verifiedEmail(json, emailField)
    if (typeof n === 'string' && n !== '') set.name = n
    if (e !== undefined) set.email = e
  }

  /**
   * OIDC Core §5.4: with an access token, scope claims (profile, email) usually come from the
   * UserInfo endpoint, not the ID token. Best effort: the ID token already fixed who the user is.
   */
  async function oidcProfile(
    as: oauth.AuthorizationServer,
    client: oauth.Client,
    set: UpstreamTokenSet,
  ): Promise<void> {
    if (set.subject === undefined || (set.name !== undefined && set.email !== undefined)) return
    if (!as.userinfo_endpoint || !(scopes.includes('profile') || scopes.includes('email'))) return
    try {
      const options = request(as.userinfo_endpoint)
      const res = await oauth.userInfoRequest(as, client, set.accessToken, options)
      // OIDC Core §5.3.4: the UserInfo `sub` must equal the ID token's.
      const info = await oauth.processUserInfoResponse(as, client, set.subject, res)
      if (typeof info.name === 'string') set.name ??= info.name
      const email = verifiedEmail(info)
      if (email !== undefined) set.email ??= email
    } catch (err) {
      log.debug({ err: describeError(err) }, 'no profile claims from userinfo; continuing without')
    }
  }

  return {
    name,
    type: config.type,

    async authorizationUrl({ state, codeVerifier, nonce }) {
      const { client } = credentials()
      const as = await getMetadata()
      if (!as.authorization_endpoint) {
        throw new UpstreamAuthError(name, 'server_error', 'no authorization_endpoint in metadata')
      }
      const url = new URL(as.authorization_endpoint)
      // The schema rejects reserved names here; set first anyway so ours always win.
      for (const [k, v] of Object.entries(settings.additionalAuthorizationParams)) {
        url.searchParams.set(k, v)
      }
      url.searchParams.set('response_type', 'code')
      url.searchParams.set('client_id', client.client_id)
      url.searchParams.set('redirect_uri', options.callbackUrl)
      if (scopes.length > 0) url.searchParams.set('scope', scopes.join(' '))
      url.searchParams.set('state', state)
      // OAuth 2.1 §4.1.1 / RFC 7636 §4.3: S256 on every leg, whatever the upstream advertises.
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier))
      url.searchParams.set('code_challenge_method', 'S256')
      // OIDC Core §3.1.2.1: nonce binds the ID token to this request; plain OAuth has no ID token.
      if (config.type === 'oidc') url.searchParams.set('nonce', nonce)
      if (settings.resource) url.searchParams.set('resource', settings.resource)
      return url
    },

    async exchangeCode(callbackParams, secrets) {
      const { client, clientAuth, server } = credentials()
      const as = await getMetadata()
      let params = new URLSearchParams(
        callbackParams instanceof URL ? callbackParams.searchParams : callbackParams,
      )
      if (config.type === 'oauth2' && !server?.discovered) {
        // RFC 9207 §2.4 compares `iss` with the issuer from metadata; an oauth2 upstream is
        // configured without metadata, so there is nothing to compare with. Mix-up is still
        // contained: the state is bound to this upstream, and its code only ever goes to this
        // upstream's token endpoint.
        params.delete('iss')
      }
      let validated: URLSearchParams
      try {
        // RFC 6749 §10.12 state; RFC 9207 §2.4: `iss` must be present when the AS advertises
        // authorization_response_iss_parameter_supported, and must equal its issuer.
        validated = oauth.validateAuthResponse(as, client, params, secrets.state)
      } catch (err) {
        if (err instanceof oauth.AuthorizationResponseError) {
          // RFC 6749 §4.1.2.1: the upstream refused; only access_denied means "the user said no".
          const reason = err.error === 'access_denied' ? 'access_denied' : 'server_error'
          throw new UpstreamAuthError(name, reason, `authorization error ${err.error.slice(0, 64)}`)
        }
        const detail = `invalid authorization response: ${describeError(err)}`
        throw new UpstreamAuthError(name, 'server_error', detail)
      }
      params = validated

      let result: oauth.TokenEndpointResponse
      try {
        const response = await oauth.authorizationCodeGrantRequest(
          as,
          client,
          clientAuth,
          params,
          options.callbackUrl,
          secrets.codeVerifier,
          { ...request(as.token_endpoint), ...resourceParams },
        )
        const checked = await withoutIdToken(response)
        result = await oauth.processAuthorizationCodeResponse(as, client, checked, {
          // OIDC Core §3.1.3.7: an ID token is required, carries our nonce, and is issued by the
          // discovered issuer for our client_id (oauth4webapi checks iss, aud, exp, iat, nonce).
          ...(config.type === 'oidc'
            ? { expectedNonce: secrets.nonce, requireIdToken: true }
            : { expectedNonce: oauth.expectNoNonce }),
        })
      } catch (err) {
        // The code is bound to this client id: recovery only helps the next sign-in.
        await recoverInvalidClient(err, client.client_id)
        throw tokenFailure(err, 'code exchange')
      }
      const set = toTokenSet(result)
      if (config.type === 'oidc') await oidcProfile(as, client, set)
      else await oauth2Identity(set)
      log.debug(
        {
          accessTokenFp: fingerprint(set.accessToken),
          refresh: set.refreshToken !== undefined,
          expiresAt: set.expiresAt,
        },
        'upstream code exchanged',
      )
      return set
    },

    async refresh(refreshToken, signal) {
      const as = await getMetadata()
      const attempt = async (mayRetry: boolean): Promise<oauth.TokenEndpointResponse | undefined> => {
        const { client, clientAuth } = credentials()
        try {
          const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, {
            ...request(as.token_endpoint, signal),
            ...resourceParams,
          })
          return await oauth.processRefreshTokenResponse(as, client, await withoutIdToken(response))
        } catch (err) {
          // A renewed secret (same client id) keeps the refresh token valid: retry once with it.
          if ((await recoverInvalidClient(err, client.client_id)) && mayRetry) return undefined
          throw err
        }
      }
      let result: oauth.TokenEndpointResponse
      try {
        const first = await attempt(true)
        result = first ?? ((await attempt(false)) as oauth.TokenEndpointResponse)
      } catch (err) {
        // RFC 6749 §5.2: invalid_grant means this refresh token will never work again; so does
        // invalid_client for a registered client that recovery could not keep (RFC 7591: a new
        // registration is a new client, and refresh tokens are bound to the old one).
        const code = err instanceof oauth.ResponseBodyError ? err.error : undefined
        const permanent = code === 'invalid_grant' || (registration !== undefined && code === 'invalid_client')
        throw tokenFailure(err, 'refresh', permanent)
      }
      const set = toTokenSet(result)
      log.debug(
        {
          accessTokenFp: fingerprint(set.accessToken),
          rotated: set.refreshToken !== undefined && set.refreshToken !== refreshToken,
        },
        'upstream token refreshed',
      )
      return set
    },

    async revoke({ accessToken, refreshToken }) {
      const as = await getMetadata()
      const endpoint = as.revocation_endpoint
      if (!endpoint) return false
      // RFC 7009 §2.1: the refresh token first; revoking it may take the access tokens with it
      // (RFC 7009 §2), and the access token is revoked on its own in case it does not.
      const targets = [
        ...(refreshToken ? [{ token: refreshToken, hint: 'refresh_token' }] : []),
        ...(accessToken ? [{ token: accessToken, hint: 'access_token' }] : []),
      ]
      const { client, clientAuth } = credentials()
      for (const { token, hint } of targets) {
        try {
          const response = await oauth.revocationRequest(as, client, clientAuth, token, {
            additionalParameters: { token_type_hint: hint },
            ...request(endpoint),
          })
          await oauth.processRevocationResponse(response)
        } catch (err) {
          throw tokenFailure(err, `${hint} revocation`)
        }
      }
      log.debug({ tokens: targets.length }, 'upstream tokens revoked at the upstream')
      return true
    },
  }
}

/**
 * The `email` claim only when the same claims say `email_verified: true` (OIDC Core §5.1): an
 * unverified address names no one, and a backend trusting vmcp's `email` would be fooled by it.
 */
function verifiedEmail(claims: Record<string, unknown>, field = 'email'): string | undefined {
  const email = claims[field]
  if (typeof email !== 'string' || email === '') return undefined
  return claims.email_verified === true ? email : undefined
}

/**
 * One line about an error that is safe to log and to put into another error: the name, code and
 * fixed message, never the `cause` (oauth4webapi puts response bodies and parameters there).
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return 'non-Error thrown'
  const code = (err as { code?: unknown }).code
  return `${err.name}${typeof code === 'string' ? ` (${code})` : ''}: ${err.message.slice(0, 200)}`
}
