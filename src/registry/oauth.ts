import * as oauth from 'oauth4webapi'
import type { RegistryAuthConfig } from '../config/index.js'
import { isLoopbackHost, type FetchLike } from '../net/index.js'

export interface RegistryOAuthOptions {
  auth: RegistryAuthConfig
  fetch: FetchLike
  /** Upper bound on each IdP request (default 10 s). */
  timeoutMs?: number
}

/** The IdP side of a registry sign-in: discovery, and the request options oauth4webapi needs. */
export interface RegistryOAuth {
  client: oauth.Client
  discover(): Promise<oauth.AuthorizationServer>
  requestOptions(url: string | URL): {
    [oauth.customFetch]: FetchLike
    [oauth.allowInsecureRequests]?: true
    signal: AbortSignal
  }
  /** Extra parameters of authorization and token requests (`audience` when configured). */
  extraParams(): Record<string, string>
}

export function createRegistryOAuth(options: RegistryOAuthOptions): RegistryOAuth {
  const { auth, fetch } = options
  const timeoutMs = options.timeoutMs ?? 10_000
  // A public client: no secret, ever (OAuth 2.1 §2.1); PKCE protects the code instead.
  const client: oauth.Client = { client_id: auth.clientId, token_endpoint_auth_method: 'none' }
  let discovered: Promise<oauth.AuthorizationServer> | undefined
  const requestOptions = (url: string | URL) => {
    const u = new URL(url)
    // OAuth 2.1 §1.5: TLS everywhere; loopback http only, as the config schema allows.
    const insecure = u.protocol === 'http:' && isLoopbackHost(u.hostname)
    return {
      [oauth.customFetch]: fetch,
      ...(insecure ? { [oauth.allowInsecureRequests]: true as const } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    }
  }
  return {
    client,
    requestOptions,
    discover() {
      discovered ??= (async () => {
        const issuer = new URL(auth.issuer)
        const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...requestOptions(issuer) })
        // RFC 8414 §3.3 / OIDC Discovery §4.3: the metadata's issuer must equal ours exactly.
        return oauth.processDiscoveryResponse(issuer, response)
      })()
      discovered.catch(() => {
        discovered = undefined
      })
      return discovered
    },
    extraParams: (): Record<string, string> => (auth.audience ? { audience: auth.audience } : {}),
  }
}

/** `scope` of a sign-in: the configured scopes plus openid (who signed in) and offline_access. */
export function registryScope(auth: RegistryAuthConfig): string {
  return [...new Set(['openid', 'offline_access', ...auth.scopes])].join(' ')
}

/** Lifetime of an access token without `expires_in`: used once, then refreshed. */
export const DEFAULT_ACCESS_TOKEN_TTL_MS = 60_000

export function expiresAtOf(result: oauth.TokenEndpointResponse, now: number): number {
  return now + (typeof result.expires_in === 'number' ? result.expires_in * 1000 : DEFAULT_ACCESS_TOKEN_TTL_MS)
}
