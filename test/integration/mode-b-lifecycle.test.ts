import { createRemoteJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postForm } from '../support/http.js'
import { startModeBStack, type ModeBStack } from '../support/mode-b.js'
import { connectWithOAuth, HeadlessOAuthProvider } from '../support/oauth-client.js'
import { startRedis } from '../support/redis.js'
import { callText } from '../support/vmcp.js'

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
})

async function mcpStatus(url: string, token: string): Promise<{ status: string; challenge: string | null }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: INIT,
  })
  await res.body?.cancel()
  return { status: String(res.status), challenge: res.headers.get('www-authenticate') }
}

function refresh(issuer: string, clientId: string, refreshToken: string) {
  return postForm<{ access_token?: string; refresh_token?: string; error?: string }>(`${issuer}/oauth/token`, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
  })
}

describe('Mode B token lifecycle (memory storage)', () => {
  let stack: ModeBStack
  beforeAll(async () => {
    stack = await startModeBStack({ upstreamTokenTtl: 20 })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('RFC 9700 §4.14.2: refresh rotates; reusing a rotated refresh token revokes the whole family', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    await client.close()
    const clientId = provider.clientInformation()?.client_id ?? ''
    const r1 = provider.tokens()?.refresh_token ?? ''
    const first = await refresh(stack.issuer, clientId, r1)
    expect(first.status).toBe(200)
    const r2 = first.body.refresh_token ?? ''
    expect(r2).not.toBe(r1)
    expect((await mcpStatus(stack.gw.url, first.body.access_token ?? '')).status).toBe('200')

    const reuse = await refresh(stack.issuer, clientId, r1)
    expect(reuse.status).toBe(400)
    expect(reuse.body.error).toBe('invalid_grant')
    // The family is gone: the newest refresh token dies with it, and so do the upstream tokens.
    const after = await refresh(stack.issuer, clientId, r2)
    expect(after.body.error).toBe('invalid_grant')
    const withRevokedUpstreams = await mcpStatus(stack.gw.url, first.body.access_token ?? '')
    expect(withRevokedUpstreams.status).toBe('401')
    expect(withRevokedUpstreams.challenge).toContain('error="invalid_token"')

    // /metrics: the grant, the refresh and the two refusals, each counted once.
    const metrics = await (await fetch(`${stack.gw.base}/metrics`)).text()
    expect(metrics).toContain('vmcp_authserver_tokens_issued_total{grant_type="authorization_code"} 1')
    expect(metrics).toContain('vmcp_authserver_tokens_issued_total{grant_type="refresh_token"} 1')
    expect(metrics).toContain('vmcp_authserver_token_errors_total{error="invalid_grant"} 2')
  })

  it('RFC 7009: revoking the refresh token ends the family, the session and the upstream tokens (revoked at both IdPs)', async () => {
    const meta = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>
    expect(meta.revocation_endpoint).toBe(`${stack.issuer}/oauth/revoke`)
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    const corpToken = (JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }).authorization
    const partnerToken = (JSON.parse(await callText(client, 'partnerapi_whoami')) as { authorization: string }).authorization
    await client.close()
    const upstreamTokens = [corpToken, partnerToken].map((t) => t.replace(/^Bearer /, ''))
    expect((await stack.corp.introspect(upstreamTokens[0] ?? '')).active).toBe(true)
    expect((await stack.partner.introspect(upstreamTokens[1] ?? '')).active).toBe(true)
    const clientId = provider.clientInformation()?.client_id ?? ''

    const res = await postForm(`${stack.issuer}/oauth/revoke`, {
      token: provider.tokens()?.refresh_token ?? '',
      token_type_hint: 'refresh_token',
      client_id: clientId,
    })
    expect(res.status).toBe(200)
    expect((await refresh(stack.issuer, clientId, provider.tokens()?.refresh_token ?? '')).body.error).toBe('invalid_grant')
    const after = await mcpStatus(stack.gw.url, provider.tokens()?.access_token ?? '')
    expect(after.status).toBe('401')
    // Best effort upstream revocation (RFC 7009 at each IdP) happened before the answer.
    expect((await stack.corp.introspect(upstreamTokens[0] ?? '')).active).toBe(false)
    expect((await stack.partner.introspect(upstreamTokens[1] ?? '')).active).toBe(false)
  })

  it('OIDC: scope openid yields a vmcp ID token for the client, which is no bearer for /mcp', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    await client.close()
    const idToken = provider.tokens()?.id_token ?? ''
    const { payload } = await jwtVerify(idToken, createRemoteJWKSet(new URL(`${stack.issuer}/.well-known/jwks.json`)), {
      issuer: stack.issuer,
      audience: provider.clientInformation()?.client_id ?? '',
    })
    expect(payload.at_hash).toBeTypeOf('string')
    const discovery = (await (await fetch(`${stack.issuer}/.well-known/openid-configuration`)).json()) as { claims_supported: string[] }
    for (const claim of Object.keys(payload)) expect(discovery.claims_supported).toContain(claim)
    expect((await mcpStatus(stack.gw.url, idToken)).status).toBe('401')
  })

  it('RFC 7009: revoking an access token ends its session; every token of it is refused', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    await client.close()
    const clientId = provider.clientInformation()?.client_id ?? ''
    const access = provider.tokens()?.access_token ?? ''
    const res = await postForm(`${stack.issuer}/oauth/revoke`, { token: access, client_id: clientId })
    expect(res.status).toBe(200)
    expect((await mcpStatus(stack.gw.url, access)).status).toBe('401')
    expect((await refresh(stack.issuer, clientId, provider.tokens()?.refresh_token ?? '')).body.error).toBe('invalid_grant')
  })

  it('RFC 6749 §4.1.2: a replayed authorization code fails and revokes the tokens issued from it', async () => {
    const provider = new HeadlessOAuthProvider()
    const { client } = await connectWithOAuth(stack.gw.url, provider)
    await client.close()
    const replay = await postForm<{ error?: string }>(`${stack.issuer}/oauth/token`, {
      grant_type: 'authorization_code',
      code: provider.code ?? '',
      code_verifier: provider.codeVerifier(),
      redirect_uri: provider.redirectUrl,
      client_id: provider.clientInformation()?.client_id ?? '',
      resource: `${stack.issuer}/mcp`,
    })
    expect(replay.status).toBe(400)
    expect(replay.body.error).toBe('invalid_grant')
    const r = await refresh(stack.issuer, provider.clientInformation()?.client_id ?? '', provider.tokens()?.refresh_token ?? '')
    expect(r.body.error).toBe('invalid_grant')
  })

  it('refreshes expired upstream tokens with their refresh tokens and injects the new ones', async () => {
    const { client } = await connectWithOAuth(stack.gw.url)
    const first = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    const second = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    // Upstream tokens live 20 s, inside vmcp's 30 s refresh skew: each use refreshes.
    expect(second.authorization).not.toBe(first.authorization)
    expect((await stack.corp.introspect(second.authorization.replace(/^Bearer /, ''))).active).toBe(true)
    await client.close()
  })

  it('relayed calls send each refreshed upstream token at once, never a header kept from before', async () => {
    const { client } = await connectWithOAuth(stack.gw.url)
    // Listed first: the per-user catalog is known, so every call takes the raw relay, whose
    // second and later calls reuse the backend target while the caller's credentials hold.
    await client.listTools()
    const seen: string[] = []
    for (let i = 0; i < 3; i++) {
      seen.push((JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }).authorization)
    }
    // Upstream tokens live 20 s, inside the 30 s refresh skew: every request refreshes them.
    expect(new Set(seen).size).toBe(3)
    for (const authorization of seen.slice(-1)) {
      expect((await stack.corp.introspect(authorization.replace(/^Bearer /, ''))).active).toBe(true)
    }
    await client.close()
  })

  it('rejects a JWT signed by a foreign key under vmcp\'s kid, and a tampered one', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    await client.close()
    const good = provider.tokens()?.access_token ?? ''
    const { kid } = decodeProtectedHeader(good)
    const { privateKey } = await generateKeyPair('ES256')
    const foreign = await new SignJWT({ tsid: 'x', client_id: 'y', scope: 'openid' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...(kid ? { kid } : {}) })
      .setIssuer(stack.issuer)
      .setAudience(`${stack.issuer}/mcp`)
      .setSubject('alice')
      .setExpirationTime('5m')
      .sign(privateKey)
    for (const bad of [foreign, `${good.split('.')[0]}.${Buffer.from('{"sub":"mallory"}').toString('base64url')}.${good.split('.')[2]}`]) {
      const r = await mcpStatus(stack.gw.url, bad)
      expect(r.status).toBe('401')
      expect(r.challenge).toContain('error="invalid_token"')
    }
  })

  it('warns at startup that memory storage loses state, and a restart indeed loses it', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    await client.close()
    await stack.restart()
    expect(stack.gw.logs.some((l) => l.includes('memory storage') && l.includes('"level":40'))).toBe(true)
    const r = await refresh(stack.issuer, provider.clientInformation()?.client_id ?? '', provider.tokens()?.refresh_token ?? '')
    expect(r.status).toBeGreaterThanOrEqual(400)
    expect(['invalid_grant', 'invalid_client']).toContain(r.body.error)
  })
})

describe('Mode B restart with Redis storage', () => {
  let redis: Awaited<ReturnType<typeof startRedis>>
  let stack: ModeBStack
  beforeAll(async () => {
    redis = await startRedis()
    stack = await startModeBStack({ redisUrl: redis.url })
  })
  afterAll(async () => {
    await stack?.close()
    await redis?.close()
  })

  it('keeps clients, refresh tokens and upstream tokens across a restart; every record is sealed at rest', async () => {
    const { client, provider } = await connectWithOAuth(stack.gw.url)
    const before = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    await client.close()
    await stack.restart()
    expect(stack.gw.logs.some((l) => l.includes('memory storage'))).toBe(false)

    const r = await refresh(stack.issuer, provider.clientInformation()?.client_id ?? '', provider.tokens()?.refresh_token ?? '')
    expect(r.status).toBe(200)
    provider.saveTokens({ access_token: r.body.access_token ?? '', token_type: 'Bearer', refresh_token: r.body.refresh_token ?? '' })
    const { client: again } = await connectWithOAuth(stack.gw.url, provider)
    const after = JSON.parse(await callText(again, 'corpapi_whoami')) as { authorization: string }
    expect(after.authorization).toBe(before.authorization)
    await again.close()

    // Nothing in Redis holds an upstream token in the clear.
    const { Redis } = await import('ioredis')
    const io = new Redis(redis.url)
    const keys = await io.keys('*')
    const values = await Promise.all(keys.map(async (k) => ((await io.type(k)) === 'string' ? io.get(k) : '')))
    await io.quit()
    const token = before.authorization.replace(/^Bearer /, '')
    expect(values.join('\n')).not.toContain(token)
    expect(keys.some((k) => k.includes(token))).toBe(false)
    // Every AS record (client, grant, refresh family, upstream tokens, ...) is sealed with AAD =
    // its key; only rate-limit counters and group sets are plain.
    const records = keys.filter((k, i) => values[i] !== '' && !k.includes(':ratelimit:'))
    expect(records.length).toBeGreaterThan(2)
    for (const k of records) expect(values[keys.indexOf(k)], k).toMatch(/^"v1\.[\w.-]+"$/)
    for (const field of ['clientId', 'redirectUri', 'codeChallenge', 'tsid', 'subject']) {
      expect(values.join('\n')).not.toContain(field)
    }
  })
})
