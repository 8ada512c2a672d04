import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postForm } from '../support/http.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { connectWithOAuth, HeadlessOAuthProvider } from '../support/oauth-client.js'
import { callText } from '../support/vmcp.js'

describe('Mode B log canary: the whole flow at trace level logs no secret', () => {
  let stack: ModeBStack
  beforeAll(async () => {
    // Short upstream token lifetime: the flow includes upstream refreshes too.
    stack = await startModeBStack({ level: 'trace', upstreamTokenTtl: 20 })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('registration, both upstream legs, code, token, refresh, reuse, upstream inject and refresh', async () => {
    const provider = new HeadlessOAuthProvider()
    const { client } = await connectWithOAuth(stack.gw.url, provider)
    const injected = [
      JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string },
      JSON.parse(await callText(client, 'partnerapi_whoami')) as { authorization: string },
      JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string },
    ].map((s) => s.authorization.replace(/^Bearer /, ''))
    await client.close()
    const clientId = provider.clientInformation()?.client_id ?? ''
    const r1 = provider.tokens()?.refresh_token ?? ''
    const refreshed = await postForm<{ access_token: string; refresh_token: string }>(`${stack.issuer}/oauth/token`, {
      grant_type: 'refresh_token',
      refresh_token: r1,
      client_id: clientId,
    })
    // Reuse (revokes the family) and a replayed code: error paths log too.
    await postForm(`${stack.issuer}/oauth/token`, { grant_type: 'refresh_token', refresh_token: r1, client_id: clientId })
    await postForm(`${stack.issuer}/oauth/token`, {
      grant_type: 'authorization_code',
      code: provider.code ?? '',
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUrl,
      client_id: clientId,
    })

    const secrets = [
      provider.code ?? '',
      provider.codeVerifier(),
      provider.tokens()?.access_token ?? '',
      r1,
      refreshed.body.access_token,
      refreshed.body.refresh_token,
      ...injected,
      '7f'.repeat(32),
    ]
    const text = stack.gw.logs.join('\n')
    expect(stack.gw.logs.length).toBeGreaterThan(30)
    expect(text).toContain('"level":10')
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8)
      expect(text).not.toContain(secret)
      for (const part of secret.split('.')) if (part.length > 16) expect(text).not.toContain(part)
    }
  })
})
