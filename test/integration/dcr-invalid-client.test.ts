import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../fixtures/datadog-like/datadog-like.mjs'
import { freePort } from '../support/http.js'
import { modeBConfig } from '../support/mode-b.js'
import { startIdp, type ConfidentialClient, type Idp } from '../support/idp.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'

describe('invalid_client at the upstream token endpoint (registration deleted upstream)', () => {
  let corp: Idp
  let dd: DatadogLike
  let corpClient: ConfidentialClient
  let gw: RunningVmcp

  beforeAll(async () => {
    corp = await startIdp()
    // Upstream access tokens shorter than vmcp's 30 s refresh skew: every use refreshes.
    dd = await startDatadogLike({ accessTokenTtl: 20 })
    const port = await freePort()
    const issuer = `http://127.0.0.1:${port}`
    corpClient = await corp.registerConfidentialClient({
      redirect_uris: [`${issuer}/oauth/callback`],
    })
    gw = await startVmcp(
      modeBConfig({
        port,
        backends: [{ name: 'datadog', transport: 'streamable-http', url: dd.mcpUrl }],
        outgoing: { datadog: { type: 'upstream_inject', upstreamInject: { providerName: 'datadog' } } },
        dataDirPrefix: 'vmcp-dcr-invalid-client-',
        upstreams: [
          {
            name: 'corp',
            type: 'oidc',
            oidc: { issuerUrl: corp.issuer, clientId: corpClient.client_id, clientSecret: { env: 'CORP_SECRET' } },
          },
          {
            name: 'datadog',
            type: 'oauth2',
            oauth2: { scopes: ['mcp'], resource: dd.resource, dcr: { discoveryUrl: dd.issuer } },
          },
        ],
      }),
      { env: { CORP_SECRET: corpClient.client_secret } },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await dd?.close()
    await corp?.close()
  })

  it('warns with the remediation, registers again once, and the next sign-in works with the new client', async () => {
    await vi.waitFor(() => expect(dd.counts.registrations).toBe(1), { timeout: 15_000 })
    const { client } = await connectWithOAuth(gw.url)
    const first = JSON.parse(await callText(client, 'datadog_whoami')) as { client_id: string }
    // The organisation deletes vmcp's client at the upstream.
    await (
      dd.provider as { Client: { adapter: { destroy(id: string): Promise<void> } } }
    ).Client.adapter.destroy(first.client_id)
    // The next use refreshes the upstream token: invalid_client.
    await expect(callText(client, 'datadog_whoami')).rejects.toThrow()
    await client.close()
    await vi.waitFor(() => expect(dd.counts.registrations).toBe(2), { timeout: 15_000 })
    const warn = gw.logs
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((r) => r.msg.includes('invalid_client'))
    expect(warn).toMatchObject({
      level: 40,
      msg: `upstream datadog token endpoint answered invalid_client for client ${first.client_id}: the cached registration is probably stale; clear it with "vmcp dcr forget --upstream datadog" and restart (vmcp tries to recover by itself first)`,
    })
    const again = await connectWithOAuth(gw.url)
    const second = JSON.parse(await callText(again.client, 'datadog_whoami')) as {
      client_id: string
      sub: string
    }
    await again.client.close()
    expect(second.sub).toBe('dd-user')
    expect(second.client_id).not.toBe(first.client_id)
  })
})
