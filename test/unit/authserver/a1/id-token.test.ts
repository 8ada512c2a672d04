import { createHash } from 'node:crypto'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'
import { describe, expect, it } from 'vitest'
import { buildOpenIdConfiguration, ID_TOKEN_CLAIMS } from '../../../../src/authserver/metadata.js'
import { createHarness, REDIRECT_URI, type Harness } from './helpers.js'

// Issue 6 item 8: with `openid` granted, the code exchange yields an OIDC ID token signed with
// vmcp's keys, for the client, echoing the authorization request's nonce; the discovery document
// says exactly that.

/** oauth4webapi as the relying party, its HTTP routed into the token endpoint app. */
async function redeemWithOauth4webapi(
  h: Harness,
  options: { scope: string; nonce?: string },
): Promise<{
  result: oauth.TokenEndpointResponse
  client: oauth.Client
  expectedNonce: string | typeof oauth.expectNoNonce
}> {
  const { client: registered } = await h.register()
  const { code, verifier } = await h.issueCode(registered, {
    scope: options.scope,
    ...(options.nonce !== undefined ? { nonce: options.nonce } : {}),
  })
  const as: oauth.AuthorizationServer = {
    issuer: h.config.issuer,
    token_endpoint: `${h.config.issuer}/oauth/token`,
    id_token_signing_alg_values_supported: [h.keys.current.alg],
  }
  const client: oauth.Client = { client_id: registered.clientId }
  // RFC 9207 / RFC 6749 §10.12: the callback as the client would have received it.
  const callback = new URLSearchParams({ code, state: 'st', iss: h.config.issuer })
  const params = oauth.validateAuthResponse(as, client, callback, 'st')
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.None(),
    params,
    REDIRECT_URI,
    verifier,
    { [oauth.customFetch]: async (url, init) => h.tokenApp.request(url, init as RequestInit) },
  )
  const expectedNonce = options.nonce ?? oauth.expectNoNonce
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce,
    requireIdToken: options.scope.split(' ').includes('openid'),
  })
  return { result, client, expectedNonce }
}

describe('ID tokens (OIDC Core §3.1.3.3)', () => {
  it('openid granted: an ID token for the client, nonce echoed, signed with vmcp’s key', async () => {
    const h = await createHarness()
    const nonce = 'n-0S6_WzA2Mj'
    const { result, client } = await redeemWithOauth4webapi(h, {
      scope: 'openid profile email',
      nonce,
    })
    // oauth4webapi checked iss, aud, exp, iat and nonce; the signature and the rest are ours.
    const claims = oauth.getValidatedIdTokenClaims(result)!
    expect(claims).toMatchObject({
      iss: h.config.issuer,
      aud: client.client_id,
      sub: 'user-1',
      nonce,
    })
    const idToken = result.id_token!
    expect(decodeProtectedHeader(idToken)).toMatchObject({ typ: 'JWT', kid: h.keys.current.kid })
    const { payload } = await jwtVerify(idToken, createLocalJWKSet(h.keys.jwks()), {
      issuer: h.config.issuer,
      audience: client.client_id,
    })
    expect(payload.auth_time).toBeTypeOf('number')
    // OIDC Core §3.1.3.6: left half of SHA-256 of the access token.
    const atHash = createHash('sha256').update(result.access_token).digest().subarray(0, 16)
    expect(payload.at_hash).toBe(atHash.toString('base64url'))
    expect(payload).toMatchObject({
      name: 'Ada Lovelace',
      email: 'ada@example.com',
      email_verified: true,
    })
    // Everything it carries is advertised in claims_supported.
    const advertised = buildOpenIdConfiguration(h.config, h.keys.current.alg)
    expect(advertised).toMatchObject({
      id_token_signing_alg_values_supported: [h.keys.current.alg],
      subject_types_supported: ['public'],
    })
    expect(advertised.claims_supported).toEqual([...ID_TOKEN_CLAIMS])
    for (const claim of Object.keys(payload)) expect(ID_TOKEN_CLAIMS).toContain(claim)
  })

  it('without a nonce in the request there is none in the ID token; scope claims follow the scope', async () => {
    const h = await createHarness()
    const { result } = await redeemWithOauth4webapi(h, { scope: 'openid' })
    const claims = oauth.getValidatedIdTokenClaims(result)!
    expect(claims).not.toHaveProperty('nonce')
    expect(claims).not.toHaveProperty('name')
    expect(claims).not.toHaveProperty('email')
  })

  it('a relying party expecting another nonce refuses it (the nonce is the request’s)', async () => {
    const h = await createHarness()
    const { client: registered } = await h.register()
    const { code, verifier } = await h.issueCode(registered, {
      scope: 'openid',
      nonce: 'the-real-one',
    })
    const res = await h.token({
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      client_id: registered.clientId,
    })
    const as = {
      issuer: h.config.issuer,
      token_endpoint: `${h.config.issuer}/oauth/token`,
      id_token_signing_alg_values_supported: [h.keys.current.alg],
    }
    await expect(
      oauth.processAuthorizationCodeResponse(as, { client_id: registered.clientId }, res, {
        expectedNonce: 'another-one',
      }),
    ).rejects.toThrow(/nonce/)
  })

  it('no openid, no ID token; refresh responses carry none', async () => {
    const h = await createHarness()
    const { result } = await redeemWithOauth4webapi(h, { scope: 'profile' })
    expect(result.id_token).toBeUndefined()
    const h2 = await createHarness()
    const { result: withOpenid, client } = await redeemWithOauth4webapi(h2, { scope: 'openid' })
    const refreshed = await h2.token({
      grant_type: 'refresh_token',
      refresh_token: withOpenid.refresh_token!,
      client_id: client.client_id,
    })
    expect(await refreshed.json()).not.toHaveProperty('id_token')
  })

  it('RFC 7009 §2.2.1: an ID token presented for revocation → unsupported_token_type', async () => {
    const h = await createHarness()
    const { result, client } = await redeemWithOauth4webapi(h, { scope: 'openid', nonce: 'n1' })
    const res = await h.revoke({ token: result.id_token!, client_id: client.client_id })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: string }).error).toBe('unsupported_token_type')
    expect(h.revoked).toEqual([])
  })
})
