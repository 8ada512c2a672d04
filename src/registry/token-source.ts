import * as oauth from 'oauth4webapi'
import type { RegistryConfig } from '../config/index.js'
import { fingerprint, type Logger } from '../log/index.js'
import { expiresAtOf, type RegistryOAuth } from './oauth.js'
import { registryTokenKey, type RegistryTokens, type RegistryTokenStore } from './token-store.js'

/** No usable sign-in: the operator must run `vmcp registry login`. */
export class RegistryAuthRequiredError extends Error {
  readonly registry: string
  /** Why: not signed in, or the sign-in expired or was revoked. */
  readonly reason: string
  constructor(registry: string, reason: string) {
    super(`registry "${registry}": authentication required: run 'vmcp registry login --registry ${registry}'`)
    this.name = 'RegistryAuthRequiredError'
    this.registry = registry
    this.reason = reason
  }
}

export interface RegistryTokenSource {
  /** A usable access token: memory → stored while valid → refresh. Never opens a browser. */
  token(): Promise<string>
  /** After a 401 on a token we thought valid: refresh once, whatever its expiry says. */
  refresh(): Promise<string>
}

export interface RegistryTokenSourceOptions {
  registry: RegistryConfig & { auth: NonNullable<RegistryConfig['auth']> }
  oauth: RegistryOAuth
  store: RegistryTokenStore
  logger: Logger
  now?: () => number
}

// Refresh a little early so a token does not expire on its way to the registry.
const EXPIRY_MARGIN_MS = 10_000

export function createRegistryTokenSource(options: RegistryTokenSourceOptions): RegistryTokenSource {
  const { registry, store, logger } = options
  const now = options.now ?? Date.now
  const key = registryTokenKey(registry.url, registry.auth.issuer)
  const log = logger.child({ component: 'registry.auth', registry: registry.name })
  let memory: RegistryTokens | undefined
  let inFlight: Promise<string> | undefined
  const usable = (t: RegistryTokens | undefined): t is RegistryTokens => !!t && t.expiresAt - EXPIRY_MARGIN_MS > now()

  async function refreshWith(stored: RegistryTokens | undefined): Promise<string> {
    if (!stored?.refreshToken) throw new RegistryAuthRequiredError(registry.name, 'not signed in')
    const { oauth: o } = options
    const as = await o.discover()
    let result: oauth.TokenEndpointResponse
    try {
      const response = await oauth.refreshTokenGrantRequest(as, o.client, oauth.None(), stored.refreshToken, {
        ...o.requestOptions(as.token_endpoint ?? registry.auth.issuer),
        additionalParameters: o.extraParams(),
      })
      result = await oauth.processRefreshTokenResponse(as, o.client, response)
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant') {
        memory = undefined
        throw new RegistryAuthRequiredError(registry.name, 'the sign-in expired or was revoked')
      }
      throw err
    }
    const next: RegistryTokens = {
      accessToken: result.access_token,
      expiresAt: expiresAtOf(result, now()),
      // RFC 9700 §4.14.2: a rotated refresh token replaces the old one, which is now dead.
      ...(result.refresh_token ?? stored.refreshToken ? { refreshToken: result.refresh_token ?? stored.refreshToken } : {}),
      ...(stored.signedInAs ? { signedInAs: stored.signedInAs } : {}),
      updatedAt: now(),
    }
    // Persist before use: if the process dies right after, the next start holds the live token.
    await store.put(key, next)
    memory = next
    log.debug(
      { accessToken: fingerprint(next.accessToken), rotated: result.refresh_token !== undefined },
      'registry access token refreshed',
    )
    return next.accessToken
  }

  // One refresh at a time: a rotated refresh token may only be spent once.
  const single = (fn: () => Promise<string>) => {
    inFlight ??= fn().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  return {
    async token() {
      if (usable(memory)) return memory.accessToken
      if (inFlight) return inFlight
      const stored = await store.get(key)
      if (usable(stored)) {
        memory = stored
        return stored.accessToken
      }
      return single(() => refreshWith(stored))
    },
    refresh() {
      return single(async () => {
        memory = undefined
        return refreshWith(await store.get(key))
      })
    },
  }
}
