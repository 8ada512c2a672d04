import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { freePort } from '../support/http.js'
import { modeBConfig } from '../support/mode-b.js'
import { startIdp, type Idp } from '../support/idp.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'

describe('an oidc upstream with dcr: vmcp registers at the identity provider that decides who the user is', () => {
  let corp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    corp = await startIdp()
    backend = await startTestBackend(['--name', 'corp-api'])
    const port = await freePort()
    const issuer = `http://127.0.0.1:${port}`
    gw = await startVmcp(
      modeBConfig({
        port,
        backends: [{ name: 'corpapi', transport: 'streamable-http', url: backend.url }],
        outgoing: { corpapi: { type: 'upstream_inject', upstreamInject: { providerName: 'corp' } } },
        scopes: ['openid'],
        dataDirPrefix: 'vmcp-dcr-oidc-',
        upstreams: [
          {
            name: 'corp',
            type: 'oidc',
            oidc: { issuerUrl: corp.issuer, scopes: ['openid', 'email'], dcr: { discoveryUrl: corp.issuer } },
          },
        ],
      }),
      { level: 'debug' },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await corp?.close()
  })

  it('signs the user in with the registered client (ID token aud = that client) and injects the corp token', async () => {
    await vi.waitFor(
      () =>
        expect(gw.logs.some((l) => l.includes('"msg":"dcr registration succeeded"'))).toBe(true),
      { timeout: 15_000 },
    )
    const success = gw.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => r.msg === 'dcr registration succeeded')
    // Basic is the first choice among what oidc-provider offers.
    expect(success).toMatchObject({
      upstream: 'corp',
      issuer: corp.issuer,
      token_endpoint_auth_method: 'client_secret_basic',
    })
    const { client } = await connectWithOAuth(gw.url)
    const seen = JSON.parse(await callText(client, 'corpapi_whoami')) as { authorization: string }
    await client.close()
    const introspection = await corp.introspect(seen.authorization.replace(/^Bearer /, ''))
    expect(introspection).toMatchObject({
      active: true,
      sub: 'alice',
      client_id: success?.client_id,
    })
  })
})
