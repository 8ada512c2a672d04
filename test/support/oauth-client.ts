import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js'
import { followRedirectsWithCookies, type ConsentForm, type CookieJar } from './http.js'

export const CLIENT_REDIRECT = 'http://127.0.0.1:9/callback'

/**
 * A real MCP SDK OAuthClientProvider that needs no browser: it follows the authorization
 * redirects itself (cookie jar, manual redirects) until the redirect URI, and keeps the code.
 */
export class HeadlessOAuthProvider implements OAuthClientProvider {
  code: string | undefined
  authorizationUrls: URL[] = []
  errors: Record<string, string>[] = []
  /** The browser of each authorization (cookies of vmcp and the IdPs). */
  jars: CookieJar[] = []
  /** Every consent form the scripted user approved. */
  consentForms: ConsentForm[] = []
  #client: OAuthClientInformationMixed | undefined
  #tokens: OAuthTokens | undefined
  #verifier = ''

  get redirectUrl(): string {
    return CLIENT_REDIRECT
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'headless-test',
      redirect_uris: [CLIENT_REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }
  }
  clientInformation() {
    return this.#client
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.#client = info
  }
  tokens() {
    return this.#tokens
  }
  saveTokens(tokens: OAuthTokens) {
    this.#tokens = tokens
  }
  saveCodeVerifier(v: string) {
    this.#verifier = v
  }
  codeVerifier() {
    return this.#verifier
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrls.push(url)
    // The scripted user approves vmcp's consent page (the browser is fresh every time).
    const jar: CookieJar = new Map()
    this.jars.push(jar)
    const back = await followRedirectsWithCookies(url.href, CLIENT_REDIRECT, {
      jar,
      consent: 'approve',
      consentForms: this.consentForms,
    })
    const error = back.searchParams.get('error')
    if (error) {
      this.errors.push(Object.fromEntries(back.searchParams))
      return
    }
    this.code = back.searchParams.get('code') ?? undefined
  }
}

/** Connects a real SDK client through the full OAuth dance; returns the client and provider. */
export async function connectWithOAuth(
  url: string,
  provider = new HeadlessOAuthProvider(),
): Promise<{ client: Client; provider: HeadlessOAuthProvider }> {
  const client = new Client({ name: 'oauth-test', version: '1.0.0' })
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }))
    return { client, provider }
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err
  }
  if (!provider.code) throw new Error(`authorization failed: ${JSON.stringify(provider.errors)}`)
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider })
  await transport.finishAuth(provider.code)
  const fresh = new Client({ name: 'oauth-test', version: '1.0.0' })
  await fresh.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }))
  return { client: fresh, provider }
}
