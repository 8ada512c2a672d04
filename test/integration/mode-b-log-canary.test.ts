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

  it('registration, both upstream legs, code, token, refresh, reuse, upstream inject and refresh, revocation', async () => {
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

    // RFC 7009 revocation of the rotated family's newest refresh token and of an access token:
    // vmcp revokes at both upstreams too, whose tokens must not reach the log either.
    await postForm(`${stack.issuer}/oauth/revoke`, { token: refreshed.body.refresh_token, client_id: clientId })
    await postForm(`${stack.issuer}/oauth/revoke`, { token: refreshed.body.access_token, client_id: clientId })
    const second = new HeadlessOAuthProvider()
    const { client: client2 } = await connectWithOAuth(stack.gw.url, second)
    const injected2 = JSON.parse(await callText(client2, 'partnerapi_whoami')) as { authorization: string }
    await client2.close()
    const id2 = second.clientInformation()?.client_id ?? ''
    await postForm(`${stack.issuer}/oauth/revoke`, { token: second.tokens()?.refresh_token ?? '', client_id: id2 })
    expect(stack.gw.logs.some((l) => l.includes('token revocation request'))).toBe(true)

    // scope openid was granted: the code exchanges returned vmcp ID tokens, secrets too.
    const idTokens = [provider.tokens()?.id_token ?? '', second.tokens()?.id_token ?? '']
    for (const idToken of idTokens) expect(idToken.split('.')).toHaveLength(3)
    await postForm(`${stack.issuer}/oauth/revoke`, { token: idTokens[0] ?? '', client_id: clientId })

    const secrets = [
      ...idTokens,
      second.code ?? '',
      second.codeVerifier(),
      second.tokens()?.access_token ?? '',
      second.tokens()?.refresh_token ?? '',
      injected2.authorization.replace(/^Bearer /, ''),
      provider.code ?? '',
      provider.codeVerifier(),
      provider.tokens()?.access_token ?? '',
      r1,
      refreshed.body.access_token,
      refreshed.body.refresh_token,
      ...injected,
      '7f'.repeat(32),
      // vmcp's transaction and consent cookies, the consent id and its CSRF token.
      ...provider.jars.flatMap((jar) => [...jar].filter(([k]) => k.includes('vmcp-')).map(([, v]) => v)),
      ...provider.consentForms.flatMap((f) => [f.fields.consent ?? '', f.fields.csrf ?? '']),
    ]
    expect(provider.consentForms).toHaveLength(1)
    expect(provider.jars[0]!.has('vmcp-tx')).toBe(true)
    expect(provider.jars[0]!.has('vmcp-consent')).toBe(true)
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
