import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  basic,
  createHarness,
  newVerifier,
  REDIRECT_URI,
  RESOURCE,
  testConfig,
  type Harness,
} from './helpers.js'

interface TokenBody {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token?: string
  scope?: string
}

async function expectError(res: Response, status: number, error: string, description?: string) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/json')
  expect(res.headers.get('cache-control')).toBe('no-store')
  const body = (await res.json()) as { error: string; error_description?: string }
  expect(body.error).toBe(error)
  if (description !== undefined) expect(body.error_description).toBe(description)
}

async function publicClientWithCode(h: Harness, options: { scope?: string } = {}) {
  const { client } = await h.register()
  const issued = await h.issueCode(client, options)
  return { client, ...issued }
}

const exchange = (
  h: Harness,
  clientId: string,
  code: string,
  verifier: string,
  extra: Record<string, string> = {},
) =>
  h.token({
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT_URI,
    client_id: clientId,
    ...extra,
  })

const refresh = (
  h: Harness,
  clientId: string,
  refreshToken: string,
  extra: Record<string, string> = {},
) =>
  h.token({
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
    ...extra,
  })

describe('POST /oauth/token: authorization_code', () => {
  it('exchanges a code with PKCE for an RFC 9068 access token and a refresh token', async () => {
    const h = await createHarness()
    const { client, code, verifier, tsid } = await publicClientWithCode(h)
    const res = await exchange(h, client.clientId, code, verifier, { resource: RESOURCE })
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('pragma')).toBe('no-cache')
    const body = (await res.json()) as TokenBody
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      scope: 'openid profile',
      // OIDC Core §3.1.3.3: openid was granted (id-token.test.ts checks it).
      id_token: expect.any(String),
    })
    expect(decodeProtectedHeader(body.access_token)).toMatchObject({
      typ: 'at+jwt',
      kid: h.keys.current.kid,
    })
    const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(h.keys.jwks()), {
      issuer: h.config.issuer,
      audience: RESOURCE,
      typ: 'at+jwt',
    })
    expect(payload).toMatchObject({
      sub: 'user-1',
      client_id: client.clientId,
      scope: 'openid profile',
      tsid,
      name: 'Ada Lovelace',
      email: 'ada@example.com',
    })
  })

  it('RFC 7636 §4.6: a wrong code_verifier → invalid_grant, and the code survives for the right one', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    await expectError(
      await exchange(h, client.clientId, code, newVerifier()),
      400,
      'invalid_grant',
      'code_verifier does not match the code_challenge',
    )
    expect((await exchange(h, client.clientId, code, verifier)).status).toBe(200)
    expect(h.revoked).toEqual([])
  })

  it('a wrong client or redirect_uri (even one extending the right one) does not burn the code', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    const { client: other } = await h.register()
    await expectError(
      await exchange(h, other.clientId, code, verifier),
      400,
      'invalid_grant',
      'authorization code was issued to another client',
    )
    // OAuth 2.1 §4.1.3: exact string match, so a prefix of the presented URI is no match.
    for (const redirect of [`${REDIRECT_URI}x`, `${REDIRECT_URI}/evil`, `${REDIRECT_URI}?a=b`]) {
      await expectError(
        await exchange(h, client.clientId, code, verifier, { redirect_uri: redirect }),
        400,
        'invalid_grant',
        'redirect_uri does not match the authorization request',
      )
    }
    await expectError(
      await exchange(h, client.clientId, code, verifier, { resource: 'https://other.example/mcp' }),
      400,
      'invalid_target',
    )
    expect((await exchange(h, client.clientId, code, verifier)).status).toBe(200)
  })

  it('OAuth 2.1 §4.1.3: a failed attempt after the redemption is no replay and revokes nothing', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    const first = (await (await exchange(h, client.clientId, code, verifier)).json()) as TokenBody
    // Someone holding the leaked code, but not the verifier, cannot end the client's session.
    await expectError(await exchange(h, client.clientId, code, newVerifier()), 400, 'invalid_grant')
    expect(h.revoked).toEqual([])
    expect((await refresh(h, client.clientId, first.refresh_token!)).status).toBe(200)
  })

  it('OAuth 2.1 §4.1.3: of two concurrent correct redemptions exactly one takes the code', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    const results = await Promise.all([
      exchange(h, client.clientId, code, verifier),
      exchange(h, client.clientId, code, verifier),
    ])
    const statuses = results.map((r) => r.status).sort()
    // The loser is a replay: it revokes what the winner got, whenever the winner got it.
    expect(statuses[1]).toBe(400)
    expect(h.revoked).toHaveLength(1)
    const ok = results.find((r) => r.status === 200)
    if (ok) {
      const body = (await ok.json()) as TokenBody
      await expectError(await refresh(h, client.clientId, body.refresh_token!), 400, 'invalid_grant')
    }
  })

  it('RFC 7636 §4.5: a missing code_verifier → invalid_request', async () => {
    const h = await createHarness()
    const { client, code } = await publicClientWithCode(h)
    const res = await h.token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      client_id: client.clientId,
    })
    await expectError(res, 400, 'invalid_request', 'code_verifier is required')
  })

  it('RFC 7636 §4.1: a malformed code_verifier → invalid_request', async () => {
    const h = await createHarness()
    const { client, code } = await publicClientWithCode(h)
    await expectError(
      await exchange(h, client.clientId, code, 'too-short'),
      400,
      'invalid_request',
      'code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~',
    )
  })

  it('RFC 6749 §4.1.3: a redirect_uri that differs from the authorization request → invalid_grant', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    await expectError(
      await exchange(h, client.clientId, code, verifier, {
        redirect_uri: 'http://127.0.0.1:33419/callback',
      }),
      400,
      'invalid_grant',
      'redirect_uri does not match the authorization request',
    )
  })

  it('RFC 6749 §4.1.3: a code issued to another client → invalid_grant', async () => {
    const h = await createHarness()
    const { code, verifier } = await publicClientWithCode(h)
    const { client: other } = await h.register()
    await expectError(
      await exchange(h, other.clientId, code, verifier),
      400,
      'invalid_grant',
      'authorization code was issued to another client',
    )
  })

  it('RFC 8707 §2.2: a resource other than the grant’s → invalid_target', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    await expectError(
      await exchange(h, client.clientId, code, verifier, { resource: 'https://other.example/mcp' }),
      400,
      'invalid_target',
      'resource does not match the authorization request',
    )
  })

  it('OAuth 2.1 §4.1.3: a replayed code revokes the refresh token issued from it (and its tsid)', async () => {
    const h = await createHarness()
    const { client, code, verifier, tsid } = await publicClientWithCode(h)
    const first = (await (await exchange(h, client.clientId, code, verifier)).json()) as TokenBody
    await expectError(
      await exchange(h, client.clientId, code, verifier),
      400,
      'invalid_grant',
      'authorization code was already used; tokens issued with it are revoked',
    )
    expect(h.revoked).toEqual([tsid])
    await expectError(
      await refresh(h, client.clientId, first.refresh_token!),
      400,
      'invalid_grant',
      'refresh token is invalid, expired or revoked',
    )
  })

  it('RFC 6749 §4.1.2: an expired code → invalid_grant', async () => {
    const h = await createHarness({
      config: {
        tokenLifespans: {
          accessToken: 3600_000,
          refreshToken: 7 * 24 * 3600_000,
          authCode: 30_000,
          refreshMax: 30 * 24 * 3600_000,
        },
      },
    })
    const { client, code, verifier } = await publicClientWithCode(h)
    h.clock.now += 30_001
    await expectError(
      await exchange(h, client.clientId, code, verifier),
      400,
      'invalid_grant',
      'authorization code is invalid or expired',
    )
  })

  it('an unknown code → invalid_grant; no refresh token for a client without the refresh_token grant', async () => {
    const h = await createHarness()
    const { client } = await h.register({
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
    })
    await expectError(
      await exchange(h, client.clientId, 'not-a-code', newVerifier()),
      400,
      'invalid_grant',
    )
    const { code, verifier } = await h.issueCode(client)
    const body = (await (await exchange(h, client.clientId, code, verifier)).json()) as TokenBody
    expect(body.access_token).toBeDefined()
    expect(body).not.toHaveProperty('refresh_token')
  })
})

describe('POST /oauth/token: refresh_token', () => {
  async function tokens(h: Harness, scope?: string) {
    const { client, code, verifier, tsid } = await publicClientWithCode(h, scope ? { scope } : {})
    const body = (await (await exchange(h, client.clientId, code, verifier)).json()) as TokenBody
    return { client, tsid, refreshToken: body.refresh_token! }
  }

  it('RFC 9700 §4.14.2: rotates the refresh token on every use', async () => {
    const h = await createHarness()
    const { client, refreshToken, tsid } = await tokens(h)
    const res = await refresh(h, client.clientId, refreshToken)
    expect(res.status).toBe(200)
    const body = (await res.json()) as TokenBody
    expect(body.refresh_token).toBeDefined()
    expect(body.refresh_token).not.toBe(refreshToken)
    const { payload } = await jwtVerify(body.access_token, h.keys.getKey, { audience: RESOURCE })
    expect(payload).toMatchObject({ tsid, sub: 'user-1', scope: 'openid profile' })
    // The new one works in turn.
    expect((await refresh(h, client.clientId, body.refresh_token!)).status).toBe(200)
  })

  it('RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family and calls onRevoke(tsid)', async () => {
    const h = await createHarness()
    const { client, refreshToken, tsid } = await tokens(h)
    const rotated = (await (await refresh(h, client.clientId, refreshToken)).json()) as TokenBody
    await expectError(
      await refresh(h, client.clientId, refreshToken),
      400,
      'invalid_grant',
      'refresh token was already used; the grant is revoked',
    )
    expect(h.revoked).toEqual([tsid])
    // The legitimate-looking newest token died with its family.
    await expectError(
      await refresh(h, client.clientId, rotated.refresh_token!),
      400,
      'invalid_grant',
    )
  })

  it('RFC 6749 §6: a narrower scope is allowed, a broader one is invalid_scope (and the token survives)', async () => {
    const h = await createHarness()
    const { client, refreshToken } = await tokens(h, 'openid profile email')
    await expectError(
      await refresh(h, client.clientId, refreshToken, { scope: 'openid offline_access' }),
      400,
      'invalid_scope',
      'requested scope exceeds the original grant',
    )
    const narrowed = (await (
      await refresh(h, client.clientId, refreshToken, { scope: 'openid' })
    ).json()) as TokenBody
    expect(narrowed.scope).toBe('openid')
    // The next refresh still carries the original grant.
    const again = (await (
      await refresh(h, client.clientId, narrowed.refresh_token!)
    ).json()) as TokenBody
    expect(again.scope).toBe('openid profile email')
  })

  it('RFC 6749 §6: a refresh token of another client → invalid_grant; RFC 8707: resource must match', async () => {
    const h = await createHarness()
    const { client, refreshToken } = await tokens(h)
    const { client: other } = await h.register()
    await expectError(
      await refresh(h, other.clientId, refreshToken),
      400,
      'invalid_grant',
      'refresh token was issued to another client',
    )
    await expectError(
      await refresh(h, client.clientId, refreshToken, { resource: 'https://other.example/mcp' }),
      400,
      'invalid_target',
    )
    expect((await refresh(h, client.clientId, refreshToken, { resource: RESOURCE })).status).toBe(
      200,
    )
  })
})

describe('POST /oauth/token: client authentication (RFC 6749 §2.3.1)', () => {
  async function confidential(h: Harness, method: 'client_secret_basic' | 'client_secret_post') {
    const { client, secret } = await h.register({
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: method,
    })
    const { code, verifier } = await h.issueCode(client)
    const params = {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
    }
    return { client, secret: secret!, params }
  }

  it('client_secret_basic: right secret → 200; wrong secret → 401 invalid_client with WWW-Authenticate Basic', async () => {
    const h = await createHarness()
    const { client, secret, params } = await confidential(h, 'client_secret_basic')
    const wrong = await h.token(params, { authorization: basic(client.clientId, `${secret}x`) })
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="vmcp"')
    await expectError(wrong, 401, 'invalid_client', 'client authentication failed')
    // The failed authentication did not spend the code.
    expect((await h.token(params, { authorization: basic(client.clientId, secret) })).status).toBe(
      200,
    )
  })

  it('client_secret_post: wrong secret → 401 invalid_client without a Basic challenge', async () => {
    const h = await createHarness()
    const { client, secret, params } = await confidential(h, 'client_secret_post')
    const wrong = await h.token({ ...params, client_id: client.clientId, client_secret: 'nope' })
    expect(wrong.headers.get('www-authenticate')).toBeNull()
    await expectError(wrong, 401, 'invalid_client', 'client authentication failed')
    expect(
      (await h.token({ ...params, client_id: client.clientId, client_secret: secret })).status,
    ).toBe(200)
  })

  it('the method must be the registered one; a confidential client cannot act as public', async () => {
    const h = await createHarness()
    const { client, secret, params } = await confidential(h, 'client_secret_basic')
    await expectError(
      await h.token({ ...params, client_id: client.clientId, client_secret: secret }),
      401,
      'invalid_client',
      'client must authenticate with client_secret_basic',
    )
    await expectError(
      await h.token({ ...params, client_id: client.clientId }),
      401,
      'invalid_client',
      'client must authenticate with client_secret_basic',
    )
  })

  it('unknown client and missing client → 401 invalid_client; two methods at once → invalid_request', async () => {
    const h = await createHarness()
    await expectError(
      await h.token({ grant_type: 'refresh_token', refresh_token: 'x', client_id: 'nobody' }),
      401,
      'invalid_client',
      'unknown client',
    )
    await expectError(
      await h.token({ grant_type: 'refresh_token', refresh_token: 'x' }),
      401,
      'invalid_client',
      'client authentication required',
    )
    await expectError(
      await h.token(
        { grant_type: 'refresh_token', refresh_token: 'x', client_secret: 's' },
        { authorization: basic('a', 'b') },
      ),
      400,
      'invalid_request',
      'use either HTTP Basic or client_secret, not both',
    )
  })

  it('RFC 6749 §5.2: a client not registered for the grant → unauthorized_client', async () => {
    const h = await createHarness()
    const { client } = await h.register({
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
    })
    await expectError(
      await refresh(h, client.clientId, 'whatever'),
      400,
      'unauthorized_client',
      'client is not registered for refresh_token',
    )
  })
})

describe('POST /oauth/token: request shape', () => {
  it('RFC 6749 §5.2: an unsupported grant type → unsupported_grant_type', async () => {
    const h = await createHarness()
    await expectError(
      await h.token({ grant_type: 'client_credentials', client_id: 'x' }),
      400,
      'unsupported_grant_type',
    )
    await expectError(
      await h.token({ client_id: 'x' }),
      400,
      'invalid_request',
      'grant_type is required',
    )
  })

  it('RFC 6749 §3.2: only application/x-www-form-urlencoded', async () => {
    const h = await createHarness()
    const res = await h.tokenApp.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'authorization_code' }),
    })
    await expectError(
      res,
      400,
      'invalid_request',
      'content type must be application/x-www-form-urlencoded',
    )
  })

  it('RFC 6749 §3.2: repeated parameters → invalid_request; repeated resource → invalid_target', async () => {
    const h = await createHarness()
    const send = (body: string) =>
      h.tokenApp.request('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
    await expectError(
      await send('grant_type=refresh_token&grant_type=refresh_token'),
      400,
      'invalid_request',
      'parameter grant_type is repeated',
    )
    await expectError(
      await send('grant_type=refresh_token&resource=a&resource=b'),
      400,
      'invalid_target',
    )
  })

  it('bodies over 64 KiB → 413', async () => {
    const h = await createHarness()
    await expectError(
      await h.token({ grant_type: 'refresh_token', pad: 'x'.repeat(65 * 1024) }),
      413,
      'invalid_request',
    )
  })

  it('rate limit: 429 with Retry-After after config.rateLimits.token per minute', async () => {
    const h = await createHarness({ config: { rateLimits: { ...testConfig().rateLimits, token: 2 } } })
    for (let i = 0; i < 2; i++) expect((await h.token({ grant_type: 'nope' })).status).toBe(400)
    const res = await h.token({ grant_type: 'nope' })
    expect(res.status).toBe(429)
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(((await res.json()) as { error: string }).error).toBe('too_many_requests')
  })

  it('storage down → 503 server_error with Retry-After', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    h.store.down = true
    const res = await exchange(h, client.clientId, code, verifier)
    expect(res.headers.get('retry-after')).toBe('5')
    await expectError(res, 503, 'server_error', 'authorization server storage unavailable')
  })

  it('CORS for browser clients; GET → 405', async () => {
    const h = await createHarness()
    const { client, code, verifier } = await publicClientWithCode(h)
    const res = await exchange(h, client.clientId, code, verifier)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const pre = await h.tokenApp.request('/oauth/token', {
      method: 'OPTIONS',
      headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' },
    })
    expect(pre.status).toBe(204)
    expect((await h.tokenApp.request('/oauth/token')).status).toBe(405)
  })
})

describe('issuer with a path', () => {
  it('routes live under the issuer path (endpoints are `${issuer}/oauth/...`)', async () => {
    const h = await createHarness({ config: { issuer: 'https://vmcp.example/tenant' } })
    const { client, code, verifier } = await publicClientWithCode(h)
    const res = await h.tokenApp.request('/tenant/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT_URI,
        client_id: client.clientId,
      }).toString(),
    })
    expect(res.status).toBe(200)
    const { access_token } = (await res.json()) as TokenBody
    const { payload } = await jwtVerify(access_token, h.keys.getKey)
    expect(payload.iss).toBe('https://vmcp.example/tenant')
    expect((await h.tokenApp.request('/oauth/token', { method: 'POST' })).status).toBe(404)
    const reg = await h.registerApp.request('/tenant/oauth/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT_URI] }),
    })
    expect(reg.status).toBe(201)
  })
})
