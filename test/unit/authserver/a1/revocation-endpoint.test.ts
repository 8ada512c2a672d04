import { generateKeyPair, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { basic, createHarness, REDIRECT_URI, RESOURCE, type Harness } from './helpers.js'

interface TokenBody {
  access_token: string
  refresh_token: string
}

async function signedIn(h: Harness, meta?: Record<string, unknown>) {
  const { client, secret } = await h.register(meta)
  const { code, verifier, tsid } = await h.issueCode(client)
  const auth: Record<string, string> = secret
    ? { authorization: basic(client.clientId, secret) }
    : {}
  const res = await h.token(
    {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      ...(secret ? {} : { client_id: client.clientId }),
    },
    auth,
  )
  expect(res.status).toBe(200)
  const body = (await res.json()) as TokenBody
  return { client, tsid, auth, ...body }
}

const refresh = (h: Harness, clientId: string, refreshToken: string) =>
  h.token({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId })

async function expectError(res: Response, status: number, error: string) {
  expect(res.status).toBe(status)
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(((await res.json()) as { error: string }).error).toBe(error)
}

describe('POST /oauth/revoke (RFC 7009)', () => {
  it('§2.1: a refresh token ends its family and its upstream tokens; refresh then fails', async () => {
    const h = await createHarness()
    const s = await signedIn(h)
    const res = await h.revoke({ token: s.refresh_token, client_id: s.client.clientId })
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(h.revoked).toEqual([s.tsid])
    await expectError(await refresh(h, s.client.clientId, s.refresh_token), 400, 'invalid_grant')
  })

  it('§2.1: a rotated refresh token still revokes its family (its newest token dies)', async () => {
    const h = await createHarness()
    const s = await signedIn(h)
    const rotated = (await (
      await refresh(h, s.client.clientId, s.refresh_token)
    ).json()) as TokenBody
    const hint = { token_type_hint: 'refresh_token' }
    expect(
      (await h.revoke({ token: s.refresh_token, client_id: s.client.clientId, ...hint })).status,
    ).toBe(200)
    expect(h.revoked).toEqual([s.tsid])
    await expectError(
      await refresh(h, s.client.clientId, rotated.refresh_token),
      400,
      'invalid_grant',
    )
  })

  it('an access token revokes its session (tsid): its refresh family and upstream tokens', async () => {
    const h = await createHarness()
    const s = await signedIn(h)
    // A wrong hint only orders the search (§2.1): the token is found as what it is.
    for (const hint of ['refresh_token', 'access_token']) {
      const t = hint === 'refresh_token' ? s : await signedIn(h)
      const res = await h.revoke({
        token: t.access_token,
        token_type_hint: hint,
        client_id: t.client.clientId,
      })
      expect(res.status).toBe(200)
      expect(h.revoked).toContain(t.tsid)
      await expectError(await refresh(h, t.client.clientId, t.refresh_token), 400, 'invalid_grant')
    }
  })

  it('§2.1: another client’s tokens are left alone, and the answer is still 200', async () => {
    const h = await createHarness()
    const s = await signedIn(h)
    const { client: other } = await h.register()
    for (const token of [s.refresh_token, s.access_token]) {
      expect((await h.revoke({ token, client_id: other.clientId })).status).toBe(200)
    }
    expect(h.revoked).toEqual([])
    expect((await refresh(h, s.client.clientId, s.refresh_token)).status).toBe(200)
  })

  it('§2.2: unknown, expired, forged and unknown-hint tokens answer 200 and change nothing', async () => {
    const h = await createHarness()
    const s = await signedIn(h)
    const { privateKey } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ tsid: s.tsid, client_id: s.client.clientId })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: h.keys.current.kid })
      .setIssuer(h.config.issuer)
      .setAudience(RESOURCE)
      .setExpirationTime('5m')
      .sign(privateKey)
    const id = s.client.clientId
    const attempts: Record<string, string>[] = [
      { token: 'no-such-token' },
      { token: 'no-such-token', token_type_hint: 'something_else' },
      { token: forged, token_type_hint: 'access_token' },
      { token: 'x'.repeat(5000) },
    ]
    for (const params of attempts) {
      expect((await h.revoke({ ...params, client_id: id })).status).toBe(200)
    }
    // Expired: one hour and a second later.
    h.clock.now += 3_601_000
    expect((await h.revoke({ token: s.access_token, client_id: id })).status).toBe(200)
    expect(h.revoked).toEqual([])
  })

  it('client authentication as at the token endpoint; token is required', async () => {
    const h = await createHarness()
    const s = await signedIn(h, {
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'client_secret_basic',
    })
    await expectError(await h.revoke({ token: s.refresh_token }), 401, 'invalid_client')
    const wrong = await h.revoke(
      { token: s.refresh_token },
      { authorization: basic(s.client.clientId, 'wrong-secret') },
    )
    await expectError(wrong, 401, 'invalid_client')
    expect(wrong.headers.get('www-authenticate')).toContain('Basic')
    // A public client cannot pass for the confidential one by naming its client_id.
    await expectError(
      await h.revoke({ token: s.refresh_token, client_id: s.client.clientId }),
      401,
      'invalid_client',
    )
    expect(h.revoked).toEqual([])
    await expectError(await h.revoke({}, s.auth), 400, 'invalid_request')
    expect((await h.revoke({ token: s.refresh_token }, s.auth)).status).toBe(200)
    expect(h.revoked).toEqual([s.tsid])
  })

  it('form bodies only; GET → 405; CORS preflight allowed', async () => {
    const h = await createHarness()
    const json = await h.revokeApp.request('/oauth/revoke', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"token":"x"}',
    })
    await expectError(json, 400, 'invalid_request')
    expect((await h.revokeApp.request('/oauth/revoke')).status).toBe(405)
    const preflight = await h.revokeApp.request('/oauth/revoke', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    })
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*')
  })
})

describe('tokenLifespans.refreshMax', () => {
  it('ends a refresh family however often it rotates', async () => {
    const hour = 3_600_000
    const h = await createHarness({
      config: {
        tokenLifespans: {
          accessToken: hour,
          refreshToken: hour,
          authCode: 600_000,
          refreshMax: 2 * hour,
        },
      },
    })
    const s = await signedIn(h)
    let token = s.refresh_token
    // Rotating every 50 minutes keeps each refresh token fresh, but not the family.
    for (let i = 0; i < 2; i++) {
      h.clock.now += 50 * 60_000
      const res = await refresh(h, s.client.clientId, token)
      expect(res.status).toBe(200)
      token = ((await res.json()) as TokenBody).refresh_token
    }
    h.clock.now += 21 * 60_000
    await expectError(await refresh(h, s.client.clientId, token), 400, 'invalid_grant')
  })
})
