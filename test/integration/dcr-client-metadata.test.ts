import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { followRedirectsWithCookies, freePort } from '../support/http.js'
import { CLIENT_REDIRECT } from '../support/oauth-client.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'
import { startStub } from '../unit/dcr/support.js'

describe('client ID metadata document: vmcp serves it and uses its URL as client_id', () => {
  let stub: Awaited<ReturnType<typeof startStub>>
  let gw: RunningVmcp
  let issuer: string

  beforeAll(async () => {
    stub = await startStub((req, res, origin) => {
      if (req.url?.startsWith('/.well-known/')) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            issuer: origin,
            authorization_endpoint: `${origin}/authorize`,
            token_endpoint: `${origin}/token`,
            client_id_metadata_document_supported: true,
          }),
        )
      } else res.writeHead(404).end()
    })
    issuer = `http://127.0.0.1:${await freePort()}`
    gw = await startVmcp(
      {
        server: { port: Number(new URL(issuer).port) },
        incomingAuth: {
          type: 'oidc',
          oidc: { issuer, audience: `${issuer}/mcp`, resource: `${issuer}/mcp` },
        },
        authServer: {
          runConfig: {
            issuer,
            allowedAudiences: [`${issuer}/mcp`],
            dataDir: mkdtempSync(join(tmpdir(), 'vmcp-cimd-')),
            upstreams: [
              {
                name: 'corp',
                type: 'oauth2',
                oauth2: {
                  authorizationEndpoint: `${stub.origin}/authorize`,
                  tokenEndpoint: `${stub.origin}/token`,
                  dcr: { discoveryUrl: stub.origin, preferClientMetadataDocument: true },
                  userinfo: { url: `${stub.origin}/me` },
                },
              },
            ],
          },
        },
      },
      { authServer: { dcr: { allowLoopbackClientMetadata: true } } },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await stub?.close()
  })

  it('GET <issuer>/oauth/client-metadata.json lists the callback, and the upstream uses it instead of registering', async () => {
    const res = await fetch(`${issuer}/oauth/client-metadata.json`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      client_id: `${issuer}/oauth/client-metadata.json`,
      client_name: 'vmcp',
      redirect_uris: [`${issuer}/oauth/callback`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    })
    await vi.waitFor(
      () =>
        expect(gw.logs.some((l) => l.includes('dcr using a client ID metadata document'))).toBe(
          true,
        ),
      { timeout: 15_000 },
    )
    expect(stub.requests.filter((r) => r.startsWith('POST'))).toEqual([])
  })
  it('a sign-in sends the document URL as client_id to the upstream authorization endpoint (no registration)', async () => {
    await vi.waitFor(
      () => expect(gw.logs.some((l) => l.includes('dcr using a client ID metadata document'))).toBe(true),
      { timeout: 15_000 },
    )
    const reg = await fetch(`${issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [CLIENT_REDIRECT], client_name: 'cimd-e2e' }),
    })
    expect(reg.status).toBe(201)
    const { client_id } = (await reg.json()) as { client_id: string }
    const authorize = new URL(`${issuer}/oauth/authorize`)
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id,
      redirect_uri: CLIENT_REDIRECT,
      code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
      code_challenge_method: 'S256',
      state: 'st',
    }).toString()
    // The scripted browser approves vmcp's consent page, then stops at the upstream's door.
    const upstream = await followRedirectsWithCookies(authorize, `${stub.origin}/authorize`, { consent: 'approve' })
    expect(upstream.searchParams.get('client_id')).toBe(`${issuer}/oauth/client-metadata.json`)
    expect(upstream.searchParams.get('redirect_uri')).toBe(`${issuer}/oauth/callback`)
    expect(upstream.searchParams.get('code_challenge_method')).toBe('S256')
    expect(stub.requests.filter((r) => r.startsWith('POST'))).toEqual([])
  })
})
