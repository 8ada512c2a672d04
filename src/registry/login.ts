import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as oauth from 'oauth4webapi'
import type { RegistryConfig } from '../config/index.js'
import { expiresAtOf, registryScope, type RegistryOAuth } from './oauth.js'
import { registryTokenKey, type RegistryTokenStore } from './token-store.js'

type AuthRegistry = RegistryConfig & { auth: NonNullable<RegistryConfig['auth']> }

export interface RegistryLoginOptions {
  registry: AuthRegistry
  oauth: RegistryOAuth
  store: RegistryTokenStore
  /** Called once with the authorization URL (print it, or open a browser with it). */
  onAuthorizationUrl: (url: string) => void
  /** How long to wait for the browser to come back (default 5 min). */
  timeoutMs?: number
}

export class RegistryLoginError extends Error {
  override readonly name = 'RegistryLoginError'
}

/**
 * Interactive sign-in: authorization code with PKCE S256 (RFC 7636 §4.2) through a one-shot
 * loopback redirect listener (RFC 8252 §7.3) on an ephemeral port. The first request to
 * /callback decides: a wrong `state` or `iss`, or an error answer, ends the sign-in with nothing
 * stored. Resolves with who signed in.
 */
export async function loginRegistry(options: RegistryLoginOptions): Promise<{ signedInAs: string | undefined }> {
  const { registry, oauth: o, store } = options
  const as = await o.discover()
  if (!as.authorization_endpoint) throw new RegistryLoginError(`${registry.auth.issuer} offers no authorization_endpoint`)
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()

  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`
  try {
    const callback = new Promise<URL>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RegistryLoginError('no answer from the browser in time')),
        options.timeoutMs ?? 300_000,
      )
      server.on('request', (req, res) => {
        const url = new URL(req.url ?? '/', redirectUri)
        if (url.pathname !== '/callback') {
          res.writeHead(404).end()
          return
        }
        clearTimeout(timer)
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
        res.end('vmcp: you may close this window and return to the terminal.\n')
        resolve(url)
      })
    })
    const authUrl = new URL(as.authorization_endpoint)
    const params: Record<string, string> = {
      response_type: 'code',
      client_id: o.client.client_id,
      redirect_uri: redirectUri,
      scope: registryScope(registry.auth),
      state,
      // RFC 7636 §4.2: S256 always; there is no plain fallback.
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      // Many IdPs only issue a refresh token (offline_access) after explicit consent.
      prompt: 'consent',
      ...o.extraParams(),
    }
    for (const [k, v] of Object.entries(params)) authUrl.searchParams.set(k, v)
    options.onAuthorizationUrl(authUrl.href)

    const returned = await callback
    let params2: URLSearchParams
    try {
      // RFC 6749 §10.12 state, RFC 9207 §2.4 iss (when the IdP sends it or advertises it).
      params2 = oauth.validateAuthResponse(as, o.client, returned, state)
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        throw new RegistryLoginError(`the identity provider refused the sign-in: ${err.error}`)
      }
      throw new RegistryLoginError(`the sign-in answer was rejected: ${(err as Error).message}`)
    }
    const response = await oauth.authorizationCodeGrantRequest(as, o.client, oauth.None(), params2, redirectUri, verifier, {
      ...o.requestOptions(as.token_endpoint ?? registry.auth.issuer),
      additionalParameters: o.extraParams(),
    })
    const result = await oauth.processAuthorizationCodeResponse(as, o.client, response, {
      expectedNonce: oauth.expectNoNonce,
      requireIdToken: false,
    })
    const claims = oauth.getValidatedIdTokenClaims(result)
    const who = [claims?.preferred_username, claims?.email, claims?.sub].find((v) => typeof v === 'string')
    const signedInAs = typeof who === 'string' ? who : undefined
    await store.put(registryTokenKey(registry.url, registry.auth.issuer), {
      accessToken: result.access_token,
      expiresAt: expiresAtOf(result, Date.now()),
      ...(result.refresh_token ? { refreshToken: result.refresh_token } : {}),
      ...(signedInAs ? { signedInAs } : {}),
      updatedAt: Date.now(),
    })
    return { signedInAs }
  } finally {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
}

/**
 * Forgets a registry sign-in; revokes the refresh token first (RFC 7009 §2.1) when the IdP
 * offers revocation. Resolves with whether anything was stored and whether revocation succeeded.
 */
export async function logoutRegistry(options: {
  registry: AuthRegistry
  oauth: RegistryOAuth
  store: RegistryTokenStore
}): Promise<{ found: boolean; revoked: boolean }> {
  const { registry, oauth: o, store } = options
  const key = registryTokenKey(registry.url, registry.auth.issuer)
  const stored = await store.get(key)
  if (!stored) {
    await store.delete(key)
    return { found: false, revoked: false }
  }
  let revoked = false
  try {
    const as = await o.discover()
    if (as.revocation_endpoint && stored.refreshToken) {
      const response = await oauth.revocationRequest(as, o.client, oauth.None(), stored.refreshToken, {
        ...o.requestOptions(as.revocation_endpoint),
        additionalParameters: { token_type_hint: 'refresh_token' },
      })
      await oauth.processRevocationResponse(response)
      revoked = true
    }
  } finally {
    // Forget locally whatever the IdP said: the user asked to be signed out here.
    await store.delete(key)
  }
  return { found: true, revoked }
}
