import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { freePort } from '../support/http.js'
import { modeBConfig } from '../support/mode-b.js'
import { startIdp, type Idp } from '../support/idp.js'
import { connectWithOAuth } from '../support/oauth-client.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'

describe('Mode B token_exchange with subjectProviderName: the corporate token is exchanged, not vmcp’s JWT', () => {
  let corp: Idp
  let backend: RunningBackend
  let gw: RunningVmcp

  beforeAll(async () => {
    corp = await startIdp()
    const port = await freePort()
    const issuer = `http://127.0.0.1:${port}`
    const login = await corp.registerConfidentialClient({
      redirect_uris: [`${issuer}/oauth/callback`],
    })
    const exchanger = await corp.registerConfidentialClient()
    backend = await startTestBackend(['--name', 'exch-api'])
    gw = await startVmcp(
      modeBConfig({
        port,
        backends: [{ name: 'exch', transport: 'streamable-http', url: backend.url }],
        outgoing: {
          exch: {
            type: 'token_exchange',
            tokenExchange: {
              tokenUrl: corp.metadata.token_endpoint,
              clientId: exchanger.client_id,
              clientSecret: { env: 'EXCHANGE_SECRET' },
              resource: 'https://exch-api.example/mcp',
              scopes: ['mcp'],
              subjectProviderName: 'corp',
            },
          },
        },
        scopes: ['openid'],
        dataDirPrefix: 'vmcp-subject-provider-',
        upstreams: [
          {
            name: 'corp',
            type: 'oidc',
            oidc: { issuerUrl: corp.issuer, clientId: login.client_id, clientSecret: { env: 'CORP_SECRET' } },
          },
        ],
      }),
      { env: { CORP_SECRET: login.client_secret, EXCHANGE_SECRET: exchanger.client_secret } },
    )
  })
  afterAll(async () => {
    await gw?.close()
    await backend?.close()
    await corp?.close()
  })

  it('RFC 8693: the backend gets a token exchanged from the user’s corp token', async () => {
    const { client, provider } = await connectWithOAuth(gw.url)
    const seen = JSON.parse(await callText(client, 'exch_whoami')) as { authorization: string }
    await client.close()
    const sent = seen.authorization.replace(/^Bearer /, '')
    const own = provider.tokens()?.access_token
    expect(sent).not.toBe(own)
    expect(corp.exchanges).toHaveLength(1)
    // The IdP accepted the subject token as one of its own (vmcp's JWT would have been refused)
    // and issued a token for the configured resource, for the signed-in user.
    expect(corp.exchanges[0]).toMatchObject({
      subjectSub: 'alice',
      audience: 'https://exch-api.example/mcp',
    })
    expect((await corp.verifyAccessToken(sent, 'https://exch-api.example/mcp')).sub).toBe('alice')
  })
})
