import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../../fixtures/datadog-like/datadog-like.mjs'
import {
  chooseAuthMethod,
  discoverServer,
  registerClient,
  renewClient,
  scopesHash,
  type DcrServerMetadata,
} from '../../../src/dcr/index.js'
import { createOutboundFetch } from '../../../src/net/index.js'
import { startIdp, type Idp } from '../../support/idp.js'
import { CALLBACK, startStub } from './support.js'

const http = { fetch: createOutboundFetch(), timeoutMs: 5000 }
const key = (issuer: string) => ({ issuer, redirectUri: CALLBACK, scopesHash: scopesHash(['mcp']) })

describe('RFC 8414 discovery with oauth4webapi', () => {
  let idp: Idp
  let dd: DatadogLike
  beforeAll(async () => {
    idp = await startIdp()
    dd = await startDatadogLike()
  })
  afterAll(async () => {
    await idp?.close()
    await dd?.close()
  })

  it('finds a path-less issuer from its URL', async () => {
    const as = await discoverServer(idp.issuer, http)
    expect(as).toMatchObject({
      issuer: idp.issuer,
      registration_endpoint: idp.metadata.registration_endpoint,
    })
  })

  it('finds an issuer with a path at the RFC 8414 §3.1 path-inserted URL', async () => {
    const before = dd.counts.metadata
    const as = await discoverServer(dd.issuer, http)
    expect(as.issuer).toBe(dd.issuer)
    expect(as.registration_endpoint).toBe(`${dd.issuer}/reg`)
    expect(dd.counts.metadata).toBe(before + 1)
  })

  it('takes a metadata URL as given (OpenID form)', async () => {
    const as = await discoverServer(`${dd.issuer}/.well-known/openid-configuration`, http)
    expect(as.issuer).toBe(dd.issuer)
  })

  it('falls back to the OpenID Connect form when the RFC 8414 URL is 404', async () => {
    const stub = await startStub((req, res, origin) => {
      if (req.url === '/t/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            issuer: `${origin}/t`,
            authorization_endpoint: `${origin}/a`,
            token_endpoint: `${origin}/t`,
          }),
        )
      } else res.writeHead(404).end()
    })
    try {
      expect((await discoverServer(`${stub.origin}/t`, http)).issuer).toBe(`${stub.origin}/t`)
      expect(stub.requests).toEqual([
        'GET /.well-known/oauth-authorization-server/t',
        'GET /t/.well-known/openid-configuration',
      ])
    } finally {
      await stub.close()
    }
  })

  it('RFC 8414 §3.3: rejects metadata naming another issuer, without trying another URL', async () => {
    const stub = await startStub((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          issuer: 'https://evil.example',
          authorization_endpoint: 'https://evil.example/a',
          token_endpoint: 'https://evil.example/t',
        }),
      )
    })
    try {
      await expect(discoverServer(stub.origin, http)).rejects.toThrow(
        `issuer mismatch (RFC 8414 §3.3) at ${stub.origin}/.well-known/oauth-authorization-server: expected ${stub.origin}, got https://evil.example`,
      )
      expect(stub.requests).toHaveLength(1)
    } finally {
      await stub.close()
    }
  })

  it('rejects a non-JSON answer', async () => {
    const stub = await startStub((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>'),
    )
    try {
      await expect(discoverServer(stub.origin, http)).rejects.toThrow(
        `discovery at ${stub.origin}/.well-known/oauth-authorization-server did not answer JSON`,
      )
    } finally {
      await stub.close()
    }
  })

  it('gives up after the timeout', async () => {
    const stub = await startStub(() => undefined) // never answers
    try {
      await expect(discoverServer(stub.origin, { ...http, timeoutMs: 150 })).rejects.toThrow(
        `discovery at ${stub.origin}/.well-known/oauth-authorization-server timed out after 150 ms`,
      )
    } finally {
      await stub.close()
    }
  })
})

describe('token endpoint auth method (what to register)', () => {
  it('prefers basic > post > none, none only with PKCE S256, basic without an advertisement', () => {
    const s256 = { code_challenge_methods_supported: ['S256'] }
    expect(
      chooseAuthMethod({
        token_endpoint_auth_methods_supported: [
          'none',
          'client_secret_post',
          'client_secret_basic',
        ],
      }),
    ).toBe('client_secret_basic')
    expect(
      chooseAuthMethod({ token_endpoint_auth_methods_supported: ['none', 'client_secret_post'] }),
    ).toBe('client_secret_post')
    expect(chooseAuthMethod({ token_endpoint_auth_methods_supported: ['none'], ...s256 })).toBe(
      'none',
    )
    expect(() => chooseAuthMethod({ token_endpoint_auth_methods_supported: ['none'] })).toThrow(
      /supports none of/,
    )
    expect(chooseAuthMethod({})).toBe('client_secret_basic')
    expect(chooseAuthMethod({}, 'none')).toBe('none')
  })
})

describe('RFC 7591 registration and RFC 7592 renewal against oidc-provider', () => {
  let dd: DatadogLike
  let server: DcrServerMetadata
  let advertised: Partial<import('oauth4webapi').AuthorizationServer>
  beforeAll(async () => {
    dd = await startDatadogLike({ secretTtl: 3600 })
    const as = await discoverServer(dd.issuer, http)
    advertised = as
    server = {
      issuer: as.issuer,
      authorization_endpoint: as.authorization_endpoint as string,
      token_endpoint: as.token_endpoint as string,
      registration_endpoint: as.registration_endpoint as string,
      discovered: true,
    }
  })
  afterAll(async () => {
    await dd?.close()
  })
  const register = () =>
    registerClient(
      {
        server,
        advertised,
        key: key(dd.issuer),
        upstream: 'datadog',
        scopes: ['mcp'],
        clientName: 'vmcp',
        softwareId: 'sw-1',
        now: Date.now,
      },
      http,
    )

  it('registers and keeps every field RFC 7591 §3.2.1 returned', async () => {
    const creds = await register()
    expect(creds).toMatchObject({
      upstream: 'datadog',
      tokenEndpointAuthMethod: 'client_secret_post',
      registrationClientUri: `${dd.issuer}/reg/${creds.clientId}`,
      registered: {
        redirect_uris: [CALLBACK],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        client_name: 'vmcp',
        scope: 'mcp',
        software_id: 'sw-1',
      },
    })
    expect(creds.clientSecret).toMatch(/.{20,}/)
    expect(creds.registrationAccessToken).toMatch(/.{20,}/)
    expect(creds.clientSecretExpiresAt).toBeGreaterThan(Date.now() / 1000 + 3500)
    expect(creds.clientIdIssuedAt).toBeGreaterThan(0)
  })

  it('public client: a server answering without a secret makes the client auth none', async () => {
    const creds = await registerClient(
      {
        server,
        advertised,
        key: key(dd.issuer),
        upstream: 'datadog',
        scopes: ['mcp'],
        clientName: 'vmcp',
        tokenEndpointAuthMethod: 'none',
        now: Date.now,
      },
      http,
    )
    expect(creds.clientSecret).toBeUndefined()
    expect(creds.tokenEndpointAuthMethod).toBe('none')
  })

  it('RFC 7592 §2.2: renewal rotates the secret and the registration access token; the old token stops working', async () => {
    const creds = await register()
    const renewed = await renewClient(creds, http, Date.now)
    expect(renewed.clientId).toBe(creds.clientId)
    expect(renewed.clientSecret).not.toBe(creds.clientSecret)
    expect(renewed.registrationAccessToken).not.toBe(creds.registrationAccessToken)
    expect(renewed.createdAt).toBe(creds.createdAt)
    expect(renewed.renewedAt).toBeGreaterThanOrEqual(creds.createdAt)
    // The old registration access token is dead: renewing with it fails with the server's error.
    await expect(renewClient(creds, http, Date.now)).rejects.toThrow(
      /^RFC 7592 renewal at http:\/\/127\.0\.0\.1:\d+\/v1\/mcp\/reg\/\S+ failed with HTTP 401 invalid_token/,
    )
  })

  it('registration errors carry the server error and description', async () => {
    dd.state.allowedRedirectUris = ['https://allowed.example/cb']
    try {
      await expect(register()).rejects.toMatchObject({
        step: 'registration',
        message: `registration at ${dd.issuer}/reg failed with HTTP 400 invalid_redirect_uri: redirect_uri is not allow-listed for this organization; ask an administrator to add it`,
        details: { status: 400, error: 'invalid_redirect_uri' },
      })
    } finally {
      dd.state.allowedRedirectUris = undefined
    }
  })
})
