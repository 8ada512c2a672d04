import type * as oauth from 'oauth4webapi'
import { fingerprint, type Logger, type Secret } from '../log/index.js'
import type { FetchLike } from '../net/index.js'
import { discoveryTarget, scopesHash } from './cache-key.js'
import { discoverServer } from './discovery.js'
import { DcrError, DcrUnavailableError } from './errors.js'
import type { DcrHttp } from './http.js'
import { registerClient, renewClient } from './registration.js'
import type {
  DcrCredentials,
  DcrCredentialStore,
  DcrKey,
  DcrServerMetadata,
  TokenEndpointAuthMethod,
} from './types.js'

/** The `dcr` block of one upstream, secrets resolved. */
export interface DcrSettings {
  discoveryUrl?: string
  registrationEndpoint?: string
  initialAccessToken?: Secret
  clientName: string
  softwareId?: string
  softwareStatement?: Secret
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod
  /** ms */
  renewBefore: number
  autoReregister: boolean
  preferClientMetadataDocument: boolean
}

/** One upstream that registers itself. */
export interface DcrUpstreamSpec {
  name: string
  scopes: readonly string[]
  dcr: DcrSettings
  /** Configured endpoints: required with `registrationEndpoint` (nothing is discovered then). */
  authorizationEndpoint?: string
  tokenEndpoint?: string
}

/** Knobs for tests and unusual deployments; the defaults suit production. */
export interface DcrTuning {
  /** Clock in epoch ms (secret expiry, cache age). Default `Date.now`. */
  now?: () => number
  /** Upper bound on each discovery, registration or renewal request. Default 10 s. */
  timeoutMs?: number
  /** Backoff between failed attempts: doubles from `initialMs` up to `maxMs`. Default 1 s … 5 min. */
  retry?: { initialMs?: number; maxMs?: number }
  /** At most one re-registration per upstream this often after invalid_client. Default 60 s. */
  reregisterIntervalMs?: number
  /** Allow an http loopback issuer as a client ID metadata document URL (tests only). */
  allowLoopbackClientMetadata?: boolean
}

export interface DcrManagerOptions extends DcrTuning {
  store: DcrCredentialStore
  fetch: FetchLike
  logger: Logger
  /** vmcp's own issuer: the redirect URI and the client metadata document hang off it. */
  issuer: string
  upstreams: readonly DcrUpstreamSpec[]
}

/** What an upstream client needs to talk to the token endpoint. Secrets: never log them. */
export interface DcrClient {
  clientId: string
  clientSecret?: string
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  server: DcrServerMetadata
}

export type DcrUpstreamState = 'pending' | 'ready' | 'unavailable'

/** One registering upstream as the upstream client sees it. */
export interface DcrUpstream {
  readonly name: string
  /** Current client; throws DcrUnavailableError while unregistered or after a hard failure. */
  client(): DcrClient
  /**
   * The token endpoint answered `invalid_client` for `clientId`. Logs the remediation, and
   * recovers: adopts a registration another replica renewed, renews an expiring secret (RFC 7592),
   * or (autoReregister, single flight, rate-limited) registers again. Resolves true when the
   * failed request may be retried as is (same client id, new secret).
   */
  onInvalidClient(clientId: string): Promise<boolean>
  status(): { state: DcrUpstreamState; reason?: string; clientId?: string }
}

export interface DcrManager {
  upstream(name: string): DcrUpstream | undefined
  /** Starts every upstream's registration in the background; never waits for the network. */
  start(): void
  /** The client ID metadata document vmcp serves at `<issuer>/oauth/client-metadata.json`. */
  clientMetadataDocument(): Record<string, unknown>
  close(): Promise<void>
}

export const CLIENT_METADATA_PATH = '/oauth/client-metadata.json'
const STALE_DAYS = 90
const DAY_MS = 24 * 3600 * 1000
const LOCK_TTL_MS = 30_000
// setTimeout's ceiling (~24.8 days); a later deadline is reached in hops.
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * The lifecycle of vmcp's registrations at its upstream authorization servers: cache lookup,
 * RFC 8414 discovery, RFC 7591 registration, RFC 7592 renewal on a timer, invalid_client recovery.
 * Failures never throw out of here: the upstream is marked unavailable, the reason logged, and the
 * attempt retried with backoff.
 */
export function createDcrManager(options: DcrManagerOptions): DcrManager {
  const now = options.now ?? Date.now
  const http: DcrHttp = { fetch: options.fetch, timeoutMs: options.timeoutMs ?? 10_000 }
  const redirectUri = `${options.issuer}/oauth/callback`
  const clientMetadataUrl = `${options.issuer}${CLIENT_METADATA_PATH}`
  const upstreams = new Map(options.upstreams.map((spec) => [spec.name, createUpstream(spec)]))
  let closed = false

  function createUpstream(spec: DcrUpstreamSpec) {
    const { name, dcr } = spec
    const log = options.logger.child({ component: 'dcr', upstream: name })
    const upstreamIssuer = dcr.discoveryUrl
      ? discoveryTarget(dcr.discoveryUrl).issuer
      : (dcr.registrationEndpoint as string)
    const key: DcrKey = { issuer: upstreamIssuer, redirectUri, scopesHash: scopesHash(spec.scopes) }
    const retryInitial = options.retry?.initialMs ?? 1000
    const retryMax = options.retry?.maxMs ?? 300_000

    let creds: DcrCredentials | undefined
    let cimd: DcrClient | undefined
    let unavailable: string | undefined = 'registration has not completed yet'
    let state: DcrUpstreamState = 'pending'
    let failures = 0
    let timer: NodeJS.Timeout | undefined
    let inflight: Promise<void> | undefined
    let lastReregister = -Infinity

    const schedule = (delayMs: number, fn: () => Promise<void>) => {
      if (closed) return
      clearTimeout(timer)
      const hop = Math.min(Math.max(0, delayMs), MAX_TIMER_MS)
      timer = setTimeout(() => {
        if (hop < delayMs) schedule(delayMs - hop, fn)
        else void single(fn)
      }, hop)
      timer.unref()
    }
    // Single flight: concurrent callers (startup, timer, invalid_client) share one attempt.
    const single = (fn: () => Promise<void>): Promise<void> => {
      inflight ??= fn().finally(() => {
        inflight = undefined
      })
      return inflight
    }
    const backoff = () => Math.min(retryInitial * 2 ** Math.min(failures - 1, 30), retryMax)

    const ready = (c: DcrCredentials) => {
      creds = c
      state = 'ready'
      unavailable = undefined
      failures = 0
    }

    const fail = (err: unknown) => {
      failures++
      const delay = backoff()
      state = 'unavailable'
      const reason = describe(err)
      unavailable = reason
      const e = err instanceof DcrError ? err : undefined
      const fields = {
        step: e?.step,
        ...(e?.details.status !== undefined ? { status: e.details.status } : {}),
        ...(e?.details.error ? { error: e.details.error } : {}),
        ...(e?.details.errorDescription ? { error_description: e.details.errorDescription } : {}),
        retry_in_ms: delay,
      }
      if (e?.details.error === 'invalid_redirect_uri') {
        // Datadog and others require an administrator to allow-list a client's redirect URI.
        log.error(
          { ...fields, redirect_uri: redirectUri },
          `upstream ${name} rejected vmcp's redirect URI: ask an administrator of ${upstreamIssuer} to allow-list ${redirectUri} (${reason}); retrying in ${seconds(delay)}`,
        )
      } else {
        log.warn(fields, `upstream ${name} unavailable: ${reason}; retrying in ${seconds(delay)}`)
      }
      schedule(delay, resolve)
    }

    async function discover(): Promise<{
      server: DcrServerMetadata
      advertised: Partial<oauth.AuthorizationServer>
    }> {
      if (!dcr.discoveryUrl) {
        return {
          server: {
            issuer: upstreamIssuer,
            authorization_endpoint: spec.authorizationEndpoint as string,
            token_endpoint: spec.tokenEndpoint as string,
            registration_endpoint: dcr.registrationEndpoint as string,
            discovered: false,
          },
          advertised: {},
        }
      }
      const as = await discoverServer(dcr.discoveryUrl, http)
      const server: DcrServerMetadata = {
        issuer: as.issuer,
        authorization_endpoint: as.authorization_endpoint as string,
        token_endpoint: as.token_endpoint as string,
        discovered: true,
      }
      if (as.registration_endpoint) server.registration_endpoint = as.registration_endpoint
      if (as.revocation_endpoint) server.revocation_endpoint = as.revocation_endpoint
      if (as.userinfo_endpoint) server.userinfo_endpoint = as.userinfo_endpoint
      if (as.jwks_uri) server.jwks_uri = as.jwks_uri
      if (as.authorization_response_iss_parameter_supported === true) {
        server.authorization_response_iss_parameter_supported = true
      }
      log.debug({ issuer: as.issuer }, 'dcr discovery succeeded')
      return { server, advertised: as }
    }

    async function register(): Promise<void> {
      const { server, advertised } = await discover()
      if (
        dcr.preferClientMetadataDocument &&
        advertised.client_id_metadata_document_supported === true
      ) {
        const secure =
          clientMetadataUrl.startsWith('https://') || options.allowLoopbackClientMetadata === true
        if (secure) {
          // Client ID metadata documents: the URL is the client id; nothing to cache or renew.
          cimd = { clientId: clientMetadataUrl, tokenEndpointAuthMethod: 'none', server }
          creds = undefined
          state = 'ready'
          unavailable = undefined
          failures = 0
          log.info(
            { issuer: server.issuer, client_id: clientMetadataUrl },
            'dcr using a client ID metadata document instead of registering',
          )
          return
        }
        log.warn(
          { issuer: server.issuer },
          `upstream ${name} accepts client ID metadata documents, but vmcp's issuer is not https; registering instead`,
        )
      }
      const registered = await registerClient(
        {
          server,
          advertised,
          key,
          upstream: name,
          scopes: spec.scopes,
          clientName: dcr.clientName,
          ...(dcr.softwareId ? { softwareId: dcr.softwareId } : {}),
          ...(dcr.softwareStatement ? { softwareStatement: dcr.softwareStatement.reveal() } : {}),
          ...(dcr.initialAccessToken
            ? { initialAccessToken: dcr.initialAccessToken.reveal() }
            : {}),
          ...(dcr.tokenEndpointAuthMethod
            ? { tokenEndpointAuthMethod: dcr.tokenEndpointAuthMethod }
            : {}),
          now,
        },
        http,
      )
      await options.store.put(registered)
      ready(registered)
      log.info(
        {
          issuer: server.issuer,
          client_id: registered.clientId,
          redirect_uri: redirectUri,
          scopes_hash: key.scopesHash,
          token_endpoint_auth_method: registered.tokenEndpointAuthMethod,
          client_secret_expires_at: registered.clientSecretExpiresAt ?? 0,
        },
        'dcr registration succeeded',
      )
      scheduleRenewal()
    }

    /** Secret expiry in epoch ms; undefined when it never expires (RFC 7591 §3.2.1: 0 or absent). */
    const expiryMs = (c: DcrCredentials) =>
      c.clientSecretExpiresAt ? c.clientSecretExpiresAt * 1000 : undefined

    function scheduleRenewal(): void {
      const exp = creds && expiryMs(creds)
      if (exp === undefined) return
      let at = exp - dcr.renewBefore
      // A secret that lives shorter than renewBefore: renew at half its remaining life, so one
      // expiry gets one renewal instead of a loop.
      if (at <= now()) at = now() + Math.max((exp - now()) / 2, 1000)
      schedule(at - now(), renewIfDue)
    }

    /** RFC 7592 renewal when within renewBefore of expiry; soft failure before, hard after. */
    async function renewIfDue(): Promise<void> {
      const current = creds
      if (!current) return resolve()
      const exp = expiryMs(current)
      if (exp === undefined || now() < exp - dcr.renewBefore) {
        ready(current)
        return scheduleRenewal()
      }
      try {
        const outcome = await renew(current)
        if (outcome === 'busy') {
          // Another replica holds the lock: read its result shortly.
          if (now() < exp) ready(current)
          return schedule(retryInitial, renewIfDue)
        }
        return scheduleRenewal()
      } catch (err) {
        const at = new Date(exp).toISOString()
        const reason = describe(err)
        if (now() < exp) {
          // Soft failure: the secret still works; keep it and try again.
          ready(current)
          failures++
          const delay = Math.min(backoff(), Math.max(exp - now(), 0))
          log.warn(
            {
              step: 'renewal',
              client_id: current.clientId,
              client_secret_expires_at: current.clientSecretExpiresAt,
              retry_in_ms: delay,
            },
            `upstream ${name}: client secret renewal failed (${reason}); keeping the current secret, which expires at ${at}; retrying in ${seconds(delay)}`,
          )
          return schedule(delay, renewIfDue)
        }
        if (!current.registrationClientUri && dcr.autoReregister) {
          // No RFC 7592 at this server: an expired secret can only be replaced by registering again.
          log.warn(
            { client_id: current.clientId },
            `upstream ${name}: client secret expired at ${at} and the server does not support RFC 7592 renewal; registering again`,
          )
          return register().catch(fail)
        }
        // Hard failure: the secret no longer works.
        fail(
          new DcrError('renewal', `client secret expired at ${at} and renewal failed: ${reason}`),
        )
      }
    }

    /** One renewal per expiry across replicas: take the lock, re-read, renew only if still due. */
    async function renew(current: DcrCredentials): Promise<'renewed' | 'adopted' | 'busy'> {
      const release = await options.store.lock(key, LOCK_TTL_MS)
      if (!release) return 'busy'
      try {
        const latest = await options.store.get(key)
        // Another replica renewed while we waited for the lock: its rotated secret and token are
        // the live ones (the server already revoked ours), so adopt them instead of renewing.
        const rotated =
          latest &&
          latest.clientId === current.clientId &&
          (latest.clientSecret !== current.clientSecret ||
            latest.registrationAccessToken !== current.registrationAccessToken)
        if (latest && rotated) {
          ready(latest)
          log.debug({ client_id: latest.clientId }, 'dcr adopted a renewal made by another replica')
          return 'adopted'
        }
        const renewed = await renewClient(current, http, now)
        await options.store.put(renewed)
        ready(renewed)
        log.info(
          {
            client_id: renewed.clientId,
            client_secret_expires_at: renewed.clientSecretExpiresAt ?? 0,
            rotated: renewed.clientSecret !== current.clientSecret,
            secretFp: renewed.clientSecret ? fingerprint(renewed.clientSecret) : undefined,
          },
          'dcr client secret renewed (RFC 7592)',
        )
        return 'renewed'
      } finally {
        await release()
      }
    }

    async function resolve(): Promise<void> {
      if (closed) return
      try {
        const cached = await options.store.get(key)
        if (!cached) return await register()
        const ageDays = Math.floor((now() - cached.createdAt) / DAY_MS)
        log.debug(
          { issuer: cached.server.issuer, client_id: cached.clientId, dcr_age_days: ageDays },
          'dcr cache hit',
        )
        if (ageDays > STALE_DAYS) {
          log.warn(
            { client_id: cached.clientId, dcr_age_days: ageDays, stale_threshold_days: STALE_DAYS },
            `upstream ${name}: the cached registration is ${ageDays} days old; consider clearing it with "vmcp dcr forget --upstream ${name}" so vmcp registers afresh`,
          )
        }
        creds = cached
        const exp = expiryMs(cached)
        if (exp !== undefined && now() >= exp - dcr.renewBefore) return await renewIfDue()
        ready(cached)
        scheduleRenewal()
      } catch (err) {
        fail(err)
      }
    }

    const upstream: DcrUpstream = {
      name,
      client() {
        if (cimd && state === 'ready') return cimd
        if (state !== 'ready' || !creds)
          throw new DcrUnavailableError(name, unavailable ?? 'not registered')
        return {
          clientId: creds.clientId,
          ...(creds.clientSecret ? { clientSecret: creds.clientSecret } : {}),
          tokenEndpointAuthMethod: creds.tokenEndpointAuthMethod,
          server: creds.server,
        }
      },
      async onInvalidClient(clientId) {
        const current = creds
        if (!current || current.clientId !== clientId) return false
        log.warn(
          { client_id: clientId, auto_reregister: dcr.autoReregister },
          `upstream ${name} token endpoint answered invalid_client for client ${clientId}: the cached registration is probably stale; clear it with "vmcp dcr forget --upstream ${name}" and restart` +
            (dcr.autoReregister ? ' (vmcp tries to recover by itself first)' : ''),
        )
        try {
          const latest = await options.store.get(key)
          if (
            latest &&
            latest.clientId === clientId &&
            latest.clientSecret !== current.clientSecret
          ) {
            ready(latest)
            return true
          }
          const exp = expiryMs(current)
          // An expired secret (clocks differ: a minute's margin) is renewed, keeping the client id
          // and so every token issued to it; a live secret being refused means a stale registration.
          if (current.registrationClientUri && exp !== undefined && now() >= exp - 60_000) {
            let renewed = false
            await single(async () => {
              renewed = (await renew(current)) !== 'busy'
            })
            if (renewed) return true
          }
        } catch (err) {
          log.warn(
            { client_id: clientId },
            `upstream ${name}: recovering from invalid_client failed: ${describe(err)}`,
          )
        }
        if (
          !dcr.autoReregister ||
          now() - lastReregister < (options.reregisterIntervalMs ?? 60_000)
        )
          return false
        lastReregister = now()
        await single(() => register().catch(fail))
        return false
      },
      status() {
        return {
          state,
          ...(state !== 'ready' && unavailable ? { reason: unavailable } : {}),
          ...(cimd ? { clientId: cimd.clientId } : creds ? { clientId: creds.clientId } : {}),
        }
      },
    }
    return {
      upstream,
      start: () => void single(resolve),
      stop: () => clearTimeout(timer),
      settle: () => inflight,
    }
  }

  return {
    upstream: (name) => upstreams.get(name)?.upstream,
    start() {
      for (const u of upstreams.values()) u.start()
    },
    clientMetadataDocument() {
      // draft-ietf-oauth-client-id-metadata-document: client_id is the document's own URL.
      return {
        client_id: clientMetadataUrl,
        client_name: options.upstreams[0]?.dcr.clientName ?? 'vmcp',
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }
    },
    async close() {
      closed = true
      for (const u of upstreams.values()) u.stop()
      await Promise.all([...upstreams.values()].map((u) => u.settle()?.catch(() => undefined)))
      await options.store.close()
    },
  }
}

function describe(err: unknown): string {
  if (err instanceof DcrError || err instanceof DcrUnavailableError) return err.message
  return err instanceof Error ? `${err.name}: ${err.message.slice(0, 200)}` : 'unknown error'
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`
}
