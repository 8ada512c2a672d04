import { createServer } from 'node:http'
import { Redis } from 'ioredis'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { followRedirectsWithCookies, freePort } from '../../support/http.js'
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  startIdp,
  type ConfidentialClient,
  type Idp,
} from '../../support/idp.js'
import { startRedis } from '../../support/redis.js'

const RESOURCE = 'http://127.0.0.1:7777/mcp'
const BACKEND = 'http://127.0.0.1:8888/mcp'

describe('test IdP (oidc-provider)', () => {
  let idp: Idp
  let confidential: ConfidentialClient

  beforeAll(async () => {
    idp = await startIdp({ extraScopes: ['tools:read'] })
    confidential = await idp.registerConfidentialClient()
  })
  afterAll(async () => {
    await idp?.close()
  })

  it('serves RFC 8414 metadata on a path-less loopback issuer', () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(idp.metadata.issuer).toBe(idp.issuer)
    expect(idp.metadata.code_challenge_methods_supported).toEqual(['S256'])
    expect(idp.metadata.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT]),
    )
    expect(idp.metadata.scopes_supported).toEqual(expect.arrayContaining(['mcp', 'tools:read']))
  })

  it('issues a JWT access token for a resource, verifiable against the JWKS', async () => {
    const tokens = await idp.getAccessToken({ resource: RESOURCE })
    expect(tokens.refresh_token).toBeTruthy()
    expect(tokens.id_token).toBeTruthy()
    expect(tokens.expires_in).toBe(600)
    const jwks = createRemoteJWKSet(new URL(idp.metadata.jwks_uri))
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: idp.issuer,
      audience: RESOURCE,
      typ: 'at+jwt',
    })
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt', kid: idp.signingKey.kid })
    expect(payload).toMatchObject({ sub: 'alice', aud: RESOURCE, scope: 'mcp' })
    expect(payload.client_id).toBe(tokens.client.client_id)

    // refresh rotates the refresh token and keeps the audience
    const refreshed = await idp.refresh(tokens.client, tokens.refresh_token!, RESOURCE)
    expect(refreshed.status).toBe(200)
    expect(refreshed.body.refresh_token).toBeTruthy()
    expect(refreshed.body.refresh_token).not.toBe(tokens.refresh_token)
    expect((await idp.verifyAccessToken(refreshed.body.access_token, RESOURCE)).sub).toBe('alice')
  })

  it('grants requested extra scopes and logs in login_hint users', async () => {
    const tokens = await idp.getAccessToken({
      resource: RESOURCE,
      scope: 'openid tools:read',
      user: 'bob',
      confidential: true,
    })
    const payload = await idp.verifyAccessToken(tokens.access_token, RESOURCE)
    expect(payload).toMatchObject({ sub: 'bob', scope: 'tools:read' })
  })

  it('issues opaque tokens without resource, introspectable by another client', async () => {
    const tokens = await idp.getAccessToken()
    expect(tokens.access_token.split('.')).toHaveLength(1)
    const introspection = await idp.introspect(tokens.access_token, confidential)
    expect(introspection).toMatchObject({
      active: true,
      sub: 'alice',
      client_id: tokens.client.client_id,
      iss: idp.issuer,
    })
    expect(introspection.scope?.split(' ')).toContain('mcp')

    expect(await idp.revoke(tokens.access_token, confidential)).toBe(200)
    expect((await idp.introspect(tokens.access_token, confidential)).active).toBe(false)
    expect((await idp.introspect('garbage', confidential)).active).toBe(false)
  })

  it('exchanges a JWT access token (RFC 8693) and records the exchange', async () => {
    const subject = await idp.getAccessToken({ resource: RESOURCE })
    const subjectClaims = decodeJwt(subject.access_token)
    const before = idp.exchanges.length
    const res = await idp.exchangeToken({
      client: confidential,
      subjectToken: subject.access_token,
      audience: BACKEND,
      scope: 'mcp tools:read',
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({
      issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      token_type: 'Bearer',
      expires_in: 600,
      scope: 'mcp tools:read',
    })
    const jwks = createRemoteJWKSet(new URL(idp.metadata.jwks_uri))
    const { payload } = await jwtVerify(res.body.access_token!, jwks, {
      issuer: idp.issuer,
      audience: BACKEND,
      typ: 'at+jwt',
    })
    expect(payload).toMatchObject({
      sub: 'alice',
      aud: BACKEND,
      client_id: confidential.client_id,
      act: { sub: confidential.client_id },
      exchanged_from: subjectClaims.jti,
    })
    expect(idp.exchanges.slice(before)).toEqual([
      {
        clientId: confidential.client_id,
        audience: BACKEND,
        scope: 'mcp tools:read',
        subjectSub: 'alice',
      },
    ])

    // client_secret_post works too; scope defaults to the subject's
    const post = await idp.exchangeToken({
      client: confidential,
      authMethod: 'client_secret_post',
      subjectToken: subject.access_token,
      resource: BACKEND,
    })
    expect(post.status).toBe(200)
    expect(post.body.scope).toBe('mcp')
    expect(idp.exchanges).toHaveLength(before + 2)
  })

  it('exchanges opaque subject tokens and nests act when re-exchanging', async () => {
    const opaque = await idp.getAccessToken()
    const first = await idp.exchangeToken({ subjectToken: opaque.access_token, audience: RESOURCE })
    expect(first.status).toBe(200)
    const second = await idp.exchangeToken({
      client: confidential,
      subjectToken: first.body.access_token,
      audience: BACKEND,
    })
    expect(second.status).toBe(200)
    const payload = await idp.verifyAccessToken(second.body.access_token!, BACKEND)
    expect(payload.sub).toBe('alice')
    expect(payload.act).toEqual({
      sub: confidential.client_id,
      act: { sub: expect.any(String) },
    })
  })

  it('rejects bad token exchange requests per RFC 8693 / RFC 6749', async () => {
    const before = idp.exchanges.length
    const garbage = await idp.exchangeToken({ client: confidential, subjectToken: 'garbage' })
    expect(garbage.status).toBe(400)
    expect(garbage.body.error).toBe('invalid_grant')

    const expired = await idp.exchangeToken({
      client: confidential,
      subjectToken: await idp.mintAccessToken({ aud: RESOURCE }, { expiresIn: -60 }),
    })
    expect(expired.status).toBe(400)
    expect(expired.body.error).toBe('invalid_grant')

    const missing = await idp.exchangeToken({ client: confidential, subjectToken: undefined })
    expect(missing.status).toBe(400)
    expect(missing.body.error).toBe('invalid_request')

    const subject = await idp.mintAccessToken({ aud: RESOURCE })
    const wrongSecret = await idp.exchangeToken({
      client: { ...confidential, client_secret: 'wrong' },
      subjectToken: subject,
    })
    expect(wrongSecret.status).toBe(401)
    expect(wrongSecret.body.error).toBe('invalid_client')

    const pub = await idp.registerClient({ token_endpoint_auth_method: 'none' })
    const publicClient = await idp.exchangeToken({ client: pub, subjectToken: subject })
    expect(publicClient.body.error).toBe('invalid_client')

    expect(idp.exchanges).toHaveLength(before)
  })

  it('mints odd tokens with the real IdP key', async () => {
    const expired = await idp.mintAccessToken({ aud: RESOURCE }, { expiresIn: -60 })
    await expect(idp.verifyAccessToken(expired, RESOURCE)).rejects.toThrow(/exp/)
    const valid = await idp.mintAccessToken({ aud: RESOURCE, sub: 'carol' })
    expect((await idp.verifyAccessToken(valid, RESOURCE)).sub).toBe('carol')
  })

  it('client_credentials yields a JWT for a resource', async () => {
    const res = await idp.clientCredentials({ client: confidential, resource: BACKEND })
    expect(res.status).toBe(200)
    const payload = await idp.verifyAccessToken(res.body.access_token, BACKEND)
    expect(payload.client_id).toBe(confidential.client_id)
  })
})

describe('IdP options', () => {
  it('sets client_secret_expires_at from secretTtl and JWTs without resource', async () => {
    const idp = await startIdp({ secretTtl: 3600, opaqueWithoutResource: false, user: 'dave' })
    try {
      const client = await idp.registerConfidentialClient()
      const t = Math.floor(Date.now() / 1000) + 3600
      expect(client.client_secret_expires_at).toBeGreaterThanOrEqual(t - 5)
      expect(client.client_secret_expires_at).toBeLessThanOrEqual(t + 5)
      const tokens = await idp.getAccessToken({ client })
      const payload = await idp.verifyAccessToken(tokens.access_token, `${idp.issuer}/resource`)
      expect(payload.sub).toBe('dave')
    } finally {
      await idp.close()
    }
  })
})

describe('IdP with strictTokenExchangeGrant', () => {
  it('only lets clients registered for the grant type exchange', async () => {
    const idp = await startIdp({ strictTokenExchangeGrant: true })
    try {
      const subjectToken = await idp.mintAccessToken({ aud: RESOURCE })
      const allowed = await idp.registerConfidentialClient()
      expect((await idp.exchangeToken({ client: allowed, subjectToken })).status).toBe(200)
      const other = await idp.registerConfidentialClient({
        grant_types: ['authorization_code', 'refresh_token'],
      })
      const denied = await idp.exchangeToken({ client: other, subjectToken })
      expect(denied.status).toBe(400)
      expect(denied.body.error).toBe('invalid_request')
    } finally {
      await idp.close()
    }
  })
})

describe('http helpers', () => {
  it('freePort hands out distinct bindable ports outside the ephemeral range', async () => {
    const ports = [await freePort(), await freePort(), await freePort()]
    expect(new Set(ports).size).toBe(3)
    for (const port of ports) {
      // Below 32768: never chosen by the OS for listen(0) or outgoing connections.
      expect(port).toBeGreaterThanOrEqual(20000)
      expect(port).toBeLessThan(32768)
      const srv = createServer()
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject)
        srv.listen(port, '127.0.0.1', () => resolve())
      })
      await new Promise<void>((resolve) => srv.close(() => resolve()))
    }
  })

  it('followRedirectsWithCookies rejects when no redirect reaches the prefix', async () => {
    const idp = await startIdp()
    try {
      await expect(
        followRedirectsWithCookies(idp.metadata.jwks_uri, 'http://127.0.0.1:9/'),
      ).rejects.toThrow(/no redirect/)
    } finally {
      await idp.close()
    }
  })
})

describe('redis helper', () => {
  it('starts, answers PING, restarts on the same port and stops', async () => {
    const redis = await startRedis()
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    try {
      await client.connect()
      expect(await client.ping()).toBe('PONG')
      await client.set('k', 'v')
      client.disconnect()

      const firstPid = redis.pid
      await redis.restart({ keepData: true })
      expect(redis.pid).not.toBe(firstPid)
      const again = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      await again.connect()
      expect(await again.get('k')).toBe('v')
      again.disconnect()

      await redis.restart()
      const third = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      await third.connect()
      expect(await third.get('k')).toBeNull()
      third.disconnect()
    } finally {
      client.disconnect()
      await redis.close()
    }
    const after = new Redis(redis.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    after.on('error', () => {})
    await expect(after.connect()).rejects.toThrow()
    after.disconnect()
  })
})
