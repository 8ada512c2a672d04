import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../fixtures/datadog-like/datadog-like.mjs'
import { freePort } from '../support/http.js'
import { modeBConfig } from '../support/mode-b.js'
import { startIdp, type ConfidentialClient, type Idp } from '../support/idp.js'
import { connectWithOAuth, HeadlessOAuthProvider } from '../support/oauth-client.js'
import { callText, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const records = (gw: RunningVmcp) => gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>)
const findLog = (gw: RunningVmcp, msg: string | RegExp) =>
  records(gw).filter((r) => (typeof msg === 'string' ? r.msg === msg : msg.test(String(r.msg))))

describe('DCR end to end: SDK client → vmcp (Mode B: corp OIDC + a Datadog-like OAuth 2.1 MCP server by discovery URL only)', () => {
  let corp: Idp
  let dd: DatadogLike
  let corpClient: ConfidentialClient
  let issuer: string
  let port: number
  let dataDir: string
  let gw: RunningVmcp | undefined
  // Every log line of every run, and every user-side secret seen, for the canary at the end.
  const allLogs: string[][] = []
  const userSecrets: string[] = []

  const config = (renewBefore = '10m') =>
    modeBConfig({
      port,
      backends: [{ name: 'datadog', transport: 'streamable-http', url: dd.mcpUrl }],
      outgoing: { datadog: { type: 'upstream_inject', upstreamInject: { providerName: 'datadog' } } },
      // One dataDir across restarts: the registration must survive them.
      runConfig: { dataDir },
      upstreams: [
        {
          name: 'corp',
          type: 'oidc',
          oidc: { issuerUrl: corp.issuer, clientId: corpClient.client_id, clientSecret: { env: 'CORP_SECRET' } },
        },
        {
          name: 'datadog',
          type: 'oauth2',
          oauth2: { scopes: ['mcp'], resource: dd.resource, dcr: { discoveryUrl: dd.issuer, renewBefore } },
        },
      ],
    })
  const start = async (renewBefore?: string, now?: () => number) => {
    await gw?.close()
    gw = await startVmcp(config(renewBefore), {
      env: { CORP_SECRET: corpClient.client_secret },
      level: 'trace',
      authServer: { dcr: { retry: { initialMs: 60_000 }, ...(now ? { now } : {}) } },
    })
    allLogs.push(gw.logs)
    return gw
  }
  const whoami = async (g: RunningVmcp) => {
    const { client, provider } = await connectWithOAuth(g.url)
    const tokens = provider.tokens()
    userSecrets.push(
      provider.code ?? '',
      provider.codeVerifier(),
      tokens?.access_token ?? '',
      tokens?.refresh_token ?? '',
    )
    try {
      return JSON.parse(await callText(client, 'datadog_whoami')) as {
        sub: string
        client_id: string
        aud: string
      }
    } finally {
      await client.close()
    }
  }

  beforeAll(async () => {
    corp = await startIdp()
    dd = await startDatadogLike({ secretTtl: 3600 })
    port = await freePort()
    issuer = `http://127.0.0.1:${port}`
    corpClient = await corp.registerConfidentialClient({
      redirect_uris: [`${issuer}/oauth/callback`],
    })
    dataDir = mkdtempSync(join(tmpdir(), 'vmcp-dcr-e2e-'))
  })
  afterAll(async () => {
    await gw?.close()
    await dd?.close()
    await corp?.close()
  })

  it('registers by discovery alone (RFC 8414 path-inserted URL) and tools/call reaches the MCP server with the user’s upstream token', async () => {
    const g = await start()
    await vi.waitFor(() => expect(findLog(g, 'dcr registration succeeded')).toHaveLength(1), {
      timeout: 15_000,
    })
    expect(dd.counts.registrations).toBe(1)
    expect(dd.counts.metadata).toBe(1)
    const [success] = findLog(g, 'dcr registration succeeded')
    expect(success).toMatchObject({
      level: 30,
      upstream: 'datadog',
      issuer: dd.issuer,
      redirect_uri: `${issuer}/oauth/callback`,
      token_endpoint_auth_method: 'client_secret_post',
    })
    expect(success?.scopes_hash).toMatch(/^[0-9a-f]{64}$/)

    const me = await whoami(g)
    // The Datadog-like server accepted only its own token for its resource, minted for the
    // client vmcp registered, for the user who signed in there.
    expect(me).toMatchObject({ sub: 'dd-user', client_id: success?.client_id, aud: dd.resource })
  })

  it('restarting with the file store does not register again', async () => {
    const g = await start()
    await vi.waitFor(() => expect(findLog(g, 'dcr cache hit')).toHaveLength(1), { timeout: 15_000 })
    expect((await whoami(g)).sub).toBe('dd-user')
    expect(dd.counts.registrations).toBe(1)
    expect(dd.counts.metadata).toBe(1)
  })

  it('a secret within renewBefore of expiry is renewed exactly once (RFC 7592) and calls keep working', async () => {
    const g = await start('2h') // the secret lives 1 h: already inside the window
    await vi.waitFor(
      () => expect(findLog(g, 'dcr client secret renewed (RFC 7592)')).toHaveLength(1),
      { timeout: 15_000 },
    )
    expect(dd.counts.renewals).toBe(1)
    expect(findLog(g, 'dcr client secret renewed (RFC 7592)')[0]).toMatchObject({
      rotated: true,
      level: 30,
    })
    expect((await whoami(g)).sub).toBe('dd-user')
    expect(dd.counts.renewals).toBe(1)
    expect(dd.counts.registrations).toBe(1)
  })

  it('renewal failing before expiry is a soft failure: warn, keep the current secret, calls work', async () => {
    dd.state.renewalFailure = 'http500'
    try {
      const g = await start('2h')
      await vi.waitFor(() => expect(findLog(g, /client secret renewal failed/)).toHaveLength(1), {
        timeout: 15_000,
      })
      const [line] = findLog(g, /client secret renewal failed/)
      expect(line?.level).toBe(40)
      expect(line?.msg).toMatch(
        /^upstream datadog: client secret renewal failed \(RFC 7592 renewal at http:\/\/127\.0\.0\.1:\d+\/v1\/mcp\/reg\/\S+ failed with HTTP 500 server_error: registration management is down\); keeping the current secret, which expires at \S+Z; retrying in 60 s$/,
      )
      expect((await whoami(g)).sub).toBe('dd-user')
    } finally {
      dd.state.renewalFailure = undefined
    }
  })

  it('renewal failing after expiry is a hard failure: the upstream is unavailable and sign-in says so', async () => {
    dd.state.renewalFailure = 'http500'
    try {
      const g = await start('10m', () => Date.now() + 3 * 3600_000)
      await vi.waitFor(
        () =>
          expect(findLog(g, /upstream datadog unavailable: client secret expired at/)).toHaveLength(
            1,
          ),
        { timeout: 15_000 },
      )
      const [line] = findLog(g, /upstream datadog unavailable/)
      expect(line?.msg).toMatch(
        /^upstream datadog unavailable: client secret expired at \S+Z and renewal failed: RFC 7592 renewal at \S+ failed with HTTP 500 server_error: registration management is down; retrying in 60 s$/,
      )
      const provider = new HeadlessOAuthProvider()
      await expect(connectWithOAuth(g.url, provider)).rejects.toThrow(/authorization failed/)
      expect(provider.errors[0]).toMatchObject({
        error: 'temporarily_unavailable',
        error_description: expect.stringMatching(
          /^upstream datadog: not available: client secret expired at \S+ and renewal failed/,
        ),
      })
    } finally {
      dd.state.renewalFailure = undefined
    }
  })

  it('log canary: no client secret, registration access token, code, verifier or token in any record at trace level', () => {
    const text = allLogs.flat().join('\n')
    expect(text).toContain('"level":10')
    // The fixture's secrets (initial registration and every rotation) and the users' own.
    const secrets = [...dd.issued, ...userSecrets, corpClient.client_secret].filter((s) => s !== '')
    expect(dd.issued.length).toBeGreaterThanOrEqual(4)
    expect(userSecrets.length).toBeGreaterThanOrEqual(12)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8)
      expect(text).not.toContain(secret)
      for (const part of secret.split('.')) if (part.length > 16) expect(text).not.toContain(part)
    }
  })
})
