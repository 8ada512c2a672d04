import { decodeJwt, decodeProtectedHeader } from 'jose'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postForm } from '../support/http.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callText } from '../support/vmcp.js'

describe('Mode B end to end: two real upstream IdPs, a real SDK OAuth client, upstream_inject', () => {
  let stack: ModeBStack
  let issuer: string
  let gw: ModeBStack['gw']
  let corp: ModeBStack['corp']
  let partner: ModeBStack['partner']

  beforeAll(async () => {
    stack = await startModeBStack()
    ;({ issuer, gw, corp, partner } = stack)
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('completes discovery, registration, PKCE, both upstream legs and the token; each backend gets its own upstream token', async () => {
    const { client, provider } = await connectWithOAuth(gw.url)
    // The SDK walked RFC 9728 → RFC 8414 → RFC 7591 → authorize with PKCE S256 and RFC 8707.
    const authorize = provider.authorizationUrls[0]
    expect(authorize?.origin + (authorize?.pathname ?? '')).toBe(`${issuer}/oauth/authorize`)
    expect(authorize?.searchParams.get('code_challenge_method')).toBe('S256')
    expect(authorize?.searchParams.get('resource')).toBe(`${issuer}/mcp`)

    // vmcp's own token: RFC 9068 JWT with tsid, signed with a thumbprint kid.
    const token = provider.tokens()?.access_token ?? ''
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' })
    const claims = decodeJwt(token)
    expect(claims).toMatchObject({ iss: issuer, aud: `${issuer}/mcp`, sub: 'alice' })
    expect(typeof claims.tsid).toBe('string')

    const toCorp = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    const toPartner = JSON.parse(await callText(client, 'partnerapi_whoami')) as { authorization: string }
    const corpToken = toCorp.authorization.replace(/^Bearer /, '')
    const partnerToken = toPartner.authorization.replace(/^Bearer /, '')
    // Never vmcp's own JWT; each backend exactly its own upstream's token.
    expect(corpToken).not.toBe(token)
    expect(partnerToken).not.toBe(token)
    expect(corpToken).not.toBe(partnerToken)
    expect((await corp.introspect(corpToken)).active).toBe(true)
    expect((await partner.introspect(partnerToken)).active).toBe(true)
    expect((await corp.introspect(partnerToken)).active).toBe(false)
    expect((await partner.introspect(corpToken)).active).toBe(false)
    await client.close()
  })

  it('serves the Mode B metadata and names its own issuer in the protected-resource document', async () => {
    const prm = (await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp`)).json()) as Record<string, unknown>
    expect(prm.authorization_servers).toEqual([issuer])
    const as = (await (await fetch(`${gw.base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>
    expect(as).toMatchObject({
      issuer,
      authorization_endpoint: `${issuer}/oauth/authorize`,
      token_endpoint: `${issuer}/oauth/token`,
      registration_endpoint: `${issuer}/oauth/register`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
    })
    const jwks = (await (await fetch(`${gw.base}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, unknown>> }
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1)
    for (const k of jwks.keys) expect(k.d).toBeUndefined()
  })

  it('RFC 7009: a revoked session is refused on its very next tools/call, its token and upstream tokens cached a moment before', async () => {
    const { client, provider } = await connectWithOAuth(gw.url)
    // Listed first: the calls take the raw relay, the second one reusing the first one's target.
    await client.listTools()
    const transport = client.transport as StreamableHTTPClientTransport
    const access = provider.tokens()?.access_token ?? ''
    const call = () =>
      fetch(gw.url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${access}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': transport.sessionId ?? '',
          'mcp-protocol-version': transport.protocolVersion ?? '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'corpapi_echo', arguments: { text: 'x' } } }),
      })
    // Twice: the second request is answered from the caches (verified token, upstream tokens,
    // the relay's backend target and headers).
    for (let i = 0; i < 2; i++) {
      const ok = await call()
      expect(ok.status).toBe(200)
      expect(await ok.text()).toContain('corp')
    }
    const revoked = await postForm(`${issuer}/oauth/revoke`, { token: access, client_id: provider.clientInformation()?.client_id ?? '' })
    expect(revoked.status).toBe(200)
    const refused = await call()
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"')
    await refused.body?.cancel()
    await client.close().catch(() => undefined)
  })
})

describe('Mode B with an issuer that has a path (RFC 8414 §3.1)', () => {
  let stack: ModeBStack
  beforeAll(async () => {
    stack = await startModeBStack({ issuerPath: '/tenant' })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('a real SDK client signs in through both upstreams at the endpoints the metadata advertises', async () => {
    const { issuer, gw } = stack
    const { client, provider } = await connectWithOAuth(gw.url)
    const authorize = provider.authorizationUrls[0]
    expect(authorize?.origin + (authorize?.pathname ?? '')).toBe(`${issuer}/oauth/authorize`)
    // The upstream IdPs registered `${issuer}/oauth/callback` only: both legs came back there.
    expect(decodeJwt(provider.tokens()?.access_token ?? '')).toMatchObject({ iss: issuer, sub: 'alice' })
    const toCorp = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    expect(toCorp.authorization).toMatch(/^Bearer /)
    await client.close()
  })

  it('serves every advertised endpoint at its advertised URL, and not at the root', async () => {
    const { issuer, gw } = stack
    const metaUrl = `${gw.base}/.well-known/oauth-authorization-server/tenant`
    const meta = (await (await fetch(metaUrl)).json()) as Record<string, unknown>
    expect(meta.issuer).toBe(issuer)
    const endpoints = Object.entries(meta).filter(
      (e): e is [string, string] => (e[0].endsWith('_endpoint') || e[0] === 'jwks_uri') && typeof e[1] === 'string',
    )
    expect(endpoints.map(([k]) => k)).toEqual(
      expect.arrayContaining(['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'jwks_uri']),
    )
    for (const [name, url] of endpoints) {
      expect(url.startsWith(`${issuer}/`), name).toBe(true)
      const method = name === 'authorization_endpoint' || name === 'jwks_uri' ? 'GET' : 'POST'
      const res = await fetch(url, { method, redirect: 'manual' })
      expect(res.status, `${name} ${url}`).not.toBe(404)
      const atRoot = await fetch(`${gw.base}${new URL(url).pathname.replace('/tenant', '')}`, { method })
      expect(atRoot.status, `${name} at the root`).toBe(404)
    }
    // The callback is not advertised, but the upstreams send the browser there.
    expect((await fetch(`${issuer}/oauth/callback`)).status).toBe(400)
    expect((await fetch(`${gw.base}/oauth/callback`)).status).toBe(404)
    for (const path of [
      '/.well-known/oauth-authorization-server/tenant',
      '/.well-known/openid-configuration/tenant',
      '/tenant/.well-known/openid-configuration',
    ]) {
      const res = await fetch(`${gw.base}${path}`)
      expect(res.status, path).toBe(200)
      expect(((await res.json()) as { issuer: string }).issuer).toBe(issuer)
    }
  })
})
