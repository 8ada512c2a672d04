import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadConfigFile, parseConfigText, type VmcpConfig } from '../../src/config/index.js'
import { createOutboundFetch } from '../../src/net/index.js'
import {
  createRegistryOAuth,
  createRegistryTokenSource,
  createRegistryTokenStoreFromConfig,
  buildRegistryBackends,
  listRegistryServers,
  RegistryAuthRequiredError,
  RegistryListError,
  registryTokenKey,
  type RegistryTokenSource,
} from '../../src/registry/index.js'
import { createRedisStore } from '../../src/storage/index.js'
import { followRedirectsWithCookies } from '../support/http.js'
import { startRedis } from '../support/redis.js'
import { EVENTUALLY } from '../support/wait.js'
import { startIdp, type Idp } from '../support/idp.js'
import { startRegistry, type RegistryFixture } from '../../fixtures/registry/registry.mjs'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { connectClient, memoryLogger, startVmcp } from '../support/vmcp.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = `${ROOT}dist/src/cli/main.js`
const AUDIENCE = 'https://registry.corp.test/api'
const SERVERS = [
  { name: 'io.corp/jira', version: '1.0.0', remotes: [{ type: 'streamable-http', url: 'https://jira.corp.test/mcp' }] },
  { name: 'io.corp/wiki', version: '1.0.0', remotes: [{ type: 'sse', url: 'https://wiki.corp.test/sse' }] },
  { name: 'io.corp/local-only', version: '1.0.0', packages: [{ registryType: 'npm', identifier: 'x' }] },
  { name: 'io.other/jira', version: '2.0.0', remotes: [{ type: 'streamable-http', url: 'https://other.test/mcp' }] },
  { name: 'com.vendor/notes', version: '1.0.0', remotes: [{ type: 'streamable-http', url: 'https://notes.test/mcp' }] },
]

interface Run {
  /** Resolves with the first stdout line (the authorization URL with --no-browser). */
  firstLine: Promise<string>
  done: Promise<{ code: number | null; stdout: string; stderr: string }>
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT })
  let stdout = ''
  let stderr = ''
  let gotLine: (l: string) => void = () => undefined
  const firstLine = new Promise<string>((r) => (gotLine = r))
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
    const nl = stdout.indexOf('\n')
    if (nl >= 0) gotLine(stdout.slice(0, nl))
  })
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const timer = setTimeout(() => child.kill(), 30_000)
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer)
      gotLine('')
      resolve({ code, stdout, stderr })
    }),
  )
  return { firstLine, done }
}

describe('vmcp registry login | status | logout, and the token source serve uses', () => {
  let idp: Idp
  let dir: string
  let file: string
  let config: VmcpConfig
  let registryFixture: RegistryFixture
  let REGISTRY_URL: string
  let notes: RunningBackend
  let jira: RunningBackend
  let wiki: RunningBackend
  const seen: string[] = []

  beforeAll(async () => {
    idp = await startIdp({ opaqueWithoutResource: false, defaultResource: AUDIENCE, extraScopes: ['registry.read'] })
    const client = await idp.registerClient({
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
    })
    ;[notes, jira, wiki] = await Promise.all([
      startTestBackend(['--name', 'notes']),
      startTestBackend(['--name', 'jira']),
      startTestBackend(['--name', 'wiki']),
    ])
    registryFixture = await startRegistry({ issuer: idp.issuer, audience: AUDIENCE, servers: SERVERS })
    REGISTRY_URL = registryFixture.url
    dir = mkdtempSync(join(tmpdir(), 'vmcp-registry-'))
    file = join(dir, 'vmcp.yaml')
    writeFileSync(
      file,
      `registries:
  - name: corp
    url: ${REGISTRY_URL}
    auth:
      type: oauth
      issuer: ${idp.issuer}
      clientId: ${client.client_id}
      scopes: [registry.read]
      audience: ${AUDIENCE}
`,
    )
    config = loadConfigFile(file).config
  })
  afterAll(async () => {
    await registryFixture?.close()
    await Promise.all([notes, jira, wiki].map((b) => b?.close()))
    await idp?.close()
  })

  /** Runs `login --no-browser` and plays the browser: IdP redirects, then the callback. */
  async function login(tamper?: (callback: URL) => void, configFile = file) {
    const r = run(['registry', 'login', '--config', configFile, '--registry', 'corp', '--no-browser'])
    const url = new URL(await r.firstLine)
    const redirectUri = url.searchParams.get('redirect_uri') ?? ''
    expect(redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/)
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.get('scope')).toBe('openid offline_access registry.read')
    const callback = await followRedirectsWithCookies(url, redirectUri)
    tamper?.(callback)
    const res = await fetch(callback)
    await res.body?.cancel()
    const out = await r.done
    seen.push(out.stdout, out.stderr)
    return { ...out, url }
  }

  const stored = async () => {
    const { logger } = memoryLogger()
    const store = await createRegistryTokenStoreFromConfig(config, logger)
    const auth = config.registries[0]?.auth
    return store.get(registryTokenKey(REGISTRY_URL, auth?.issuer ?? ''))
  }

  it('RFC 6749 §10.12: a callback with another state ends the sign-in and stores nothing', async () => {
    const out = await login((cb) => cb.searchParams.set('state', 'forged'))
    expect(out.code).toBe(1)
    expect(out.stderr).toContain('vmcp: registry login failed: the sign-in answer was rejected')
    expect(await stored()).toBeUndefined()
  })

  it('RFC 9207 §2.4: a callback naming another issuer ends the sign-in and stores nothing', async () => {
    const out = await login((cb) => cb.searchParams.set('iss', 'http://127.0.0.1:1'))
    expect(out.code).toBe(1)
    expect(out.stderr).toContain('the sign-in answer was rejected')
    expect(await stored()).toBeUndefined()
  })

  async function tokenSource(offsetMs = 0): Promise<RegistryTokenSource> {
    const { logger, logs } = memoryLogger('trace')
    seenLogs.push(logs)
    const registry = config.registries[0]!
    return createRegistryTokenSource({
      registry: registry as typeof registry & { auth: NonNullable<typeof registry.auth> },
      oauth: createRegistryOAuth({ auth: registry.auth!, fetch: createOutboundFetch() }),
      store: await createRegistryTokenStoreFromConfig(config, logger),
      logger,
      now: () => Date.now() + offsetMs,
    })
  }
  const seenLogs: string[][] = []
  const list = async (tokens: RegistryTokenSource) =>
    listRegistryServers({ registry: config.registries[0]!, fetch: createOutboundFetch(), tokens })

  it('serve without a sign-in is told to log in, without a browser, and the registry is not asked', async () => {
    const source = await tokenSource()
    const err = await source.token().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RegistryAuthRequiredError)
    expect((err as RegistryAuthRequiredError).reason).toBe('not signed in')
    expect((err as Error).message).toBe(
      `registry "corp": authentication required: run 'vmcp registry login --registry corp'`,
    )
    const listed = await list(source).catch((e: unknown) => e)
    expect(listed).toBeInstanceOf(RegistryListError)
    expect(listed).toMatchObject({ kind: 'auth_required' })
    expect(registryFixture.counts.listings).toBe(0)

    // vmcp serve: the registry says how to sign in, every other backend is served.
    const gw = await startServe()
    try {
      await vi.waitFor(() => expect(gw.vmcp.registries.status()[0]?.state).toBe('auth_required'), { timeout: 15_000 })
      const status = (await (await fetch(`${gw.base}/status`)).json()) as { registries: unknown[]; backends: Array<{ name: string }> }
      expect(status.registries).toEqual([
        {
          name: 'corp',
          url: REGISTRY_URL,
          state: 'auth_required',
          message: `registry "corp": authentication required: run 'vmcp registry login --registry corp'`,
          servers: 0,
          backends: [],
        },
      ])
      expect(status.backends.map((b) => b.name)).toEqual(['notes'])
      expect(gw.logs.some((l) => l.includes(`registry \\"corp\\": authentication required: run 'vmcp registry login --registry corp'`))).toBe(true)
      const client = await connectClient(gw.url)
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('notes_echo')
      await client.close()
      seen.push(...gw.logs)
    } finally {
      await gw.close()
      registryFixture.state.servers = SERVERS
    }
  })

  function startServe() {
    return startVmcp(
      {
        stateDir: config.stateDir,
        backends: [{ name: 'notes', transport: 'streamable-http', url: notes.url }],
        registries: [{ ...rawRegistry(), refreshInterval: '1h' }],
      },
      { level: 'trace' },
    )
  }
  const rawRegistry = () => {
    const r = config.registries[0]!
    return { name: r.name, url: r.url, auth: { type: 'oauth', issuer: r.auth!.issuer, clientId: r.auth!.clientId, scopes: r.auth!.scopes, audience: r.auth!.audience } }
  }

  it('serve after login with an expired access token refreshes, lists, and follows added/removed servers', async () => {
    expect((await login()).code).toBe(0)
    const realServers = [
      { name: 'io.corp/jira', version: '1.0.0', remotes: [{ type: 'streamable-http', url: jira.url }] },
      { name: 'io.corp/wiki', version: '1.0.0', remotes: [{ type: 'streamable-http', url: wiki.url }] },
      { name: 'io.corp/notes', version: '1.0.0', remotes: [{ type: 'streamable-http', url: wiki.url }] },
    ]
    registryFixture.state.servers = realServers
    const { logger } = memoryLogger()
    const store = await createRegistryTokenStoreFromConfig(config, logger)
    const key = registryTokenKey(REGISTRY_URL, config.registries[0]!.auth!.issuer)
    const expire = async () => {
      const t = await store.get(key)
      await store.put(key, { ...t!, expiresAt: 0 })
      return t!
    }
    const loggedIn = await expire()
    let gw = await startServe()
    try {
      await vi.waitFor(() => expect(gw.vmcp.registries.status()[0]?.state).toBe('ok'), { timeout: 15_000 })
      const after1 = await store.get(key)
      expect(after1?.refreshToken).not.toBe(loggedIn.refreshToken)
      expect(gw.vmcp.registries.status()[0]).toMatchObject({ servers: 3, backends: ['jira', 'wiki'] })
      expect(gw.logs.some((l) => l.includes('server io.corp/notes skipped: name \\"notes\\" is taken by a configured backend'))).toBe(true)
      const client = await connectClient(gw.url)
      const names = (await client.listTools()).tools.map((t) => t.name)
      expect(names).toEqual(expect.arrayContaining(['notes_echo', 'jira_echo', 'wiki_echo']))
      let changed = 0
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        changed++
      })
      // wiki leaves the registry: its backend goes, and the session hears list_changed.
      registryFixture.state.servers = realServers.filter((x) => x.name !== 'io.corp/wiki')
      await gw.vmcp.registries.syncNow()
      expect(gw.vmcp.registries.status()[0]?.backends).toEqual(['jira'])
      await vi.waitFor(() => expect(changed).toBeGreaterThan(0), { timeout: 15_000 })
      expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('wiki_echo')
      // The registry goes away: the last good listing stays.
      const saved = registryFixture.state.servers
      await registryFixture.close()
      await gw.vmcp.registries.syncNow()
      expect(gw.vmcp.registries.status()[0]).toMatchObject({ state: 'unreachable', backends: ['jira'] })
      expect(gw.vmcp.gateway.status().backends.map((b) => b.name)).toEqual(['notes', 'jira'])
      registryFixture = await startRegistry({ issuer: idp.issuer, audience: AUDIENCE, servers: saved, port: Number(new URL(REGISTRY_URL).port) })
      await client.close()
      seen.push(...gw.logs)
    } finally {
      await gw.close()
    }
    // Another expiry, a new process: the rotated refresh token it persisted still works.
    const beforeSecond = await expire()
    gw = await startServe()
    try {
      await vi.waitFor(() => expect(gw.vmcp.registries.status()[0]?.state).toBe('ok'), { timeout: 15_000 })
      const after2 = await store.get(key)
      expect(after2?.refreshToken).not.toBe(beforeSecond.refreshToken)
      secretsExtra.push(loggedIn.accessToken, loggedIn.refreshToken!, beforeSecond.accessToken, beforeSecond.refreshToken!, after2!.accessToken, after2!.refreshToken!)
      seen.push(...gw.logs)
    } finally {
      await gw.close()
      registryFixture.state.servers = SERVERS
    }
  })

  const secretsExtra: string[] = []
  it('login signs in with PKCE, stores sealed tokens, and refreshes persist rotated refresh tokens', async () => {
    const out = await login()
    expect(out.stderr).toBe('')
    expect(out.code).toBe(0)
    // Exactly two lines: the URL alone, then who signed in.
    expect(out.stdout.split('\n')).toEqual([out.url.href, 'signed in to registry corp as alice', ''])
    const first = await stored()
    expect(first?.signedInAs).toBe('alice')
    const payload = await idp.verifyAccessToken(first!.accessToken, AUDIENCE)
    expect(payload.sub).toBe('alice')

    const status = run(['registry', 'status', '--config', file])
    const s = await status.done
    expect(s.code).toBe(0)
    // The serve runs above recorded their last listing.
    expect(s.stdout).toMatch(
      /^corp\t[^\t]+\tsigned in as alice\taccess token valid until [^\t]+, refreshable\tlast listing [^\t]+: \d+ server\(s\), \d+ backend\(s\)\n$/,
    )
    seen.push(s.stdout)

    // The access token has expired (as far as the source can tell): refresh, rotate, persist.
    const { logger, logs } = memoryLogger('trace')
    const registry = config.registries[0]!
    const make = (offsetMs: number) =>
      createRegistryTokenSource({
        registry: registry as typeof registry & { auth: NonNullable<typeof registry.auth> },
        oauth: createRegistryOAuth({ auth: registry.auth!, fetch: createOutboundFetch() }),
        store: storeForSources,
        logger,
        now: () => Date.now() + offsetMs,
      })
    const storeForSources = await createRegistryTokenStoreFromConfig(config, logger)
    const t1 = await make(3_600_000).token()
    expect(t1).not.toBe(first!.accessToken)
    const second = await stored()
    expect(second?.accessToken).toBe(t1)
    expect(second?.refreshToken).toBeDefined()
    expect(second?.refreshToken).not.toBe(first!.refreshToken)

    // Another expiry, another process (fresh memory): the persisted rotated token still refreshes.
    const t2 = await make(7_200_000).token()
    const third = await stored()
    expect(third?.accessToken).toBe(t2)
    expect(third?.refreshToken).not.toBe(second!.refreshToken)
    seen.push(...logs)

    // The listing, across pages (page size 2), with the fresh token.
    const source = await tokenSource()
    const servers = await list(source)
    expect(servers.map((x) => x.name)).toEqual(SERVERS.map((x) => x.name))
    expect(buildRegistryBackends(config.registries[0]!, servers, new Set(['notes']))).toEqual({
      backends: [
        { name: 'jira', transport: 'streamable-http', url: 'https://jira.corp.test/mcp', headers: {} },
        { name: 'wiki', transport: 'sse', url: 'https://wiki.corp.test/sse', headers: {} },
        { name: 'jira-2', transport: 'streamable-http', url: 'https://other.test/mcp', headers: {} },
      ],
      skipped: [
        { server: 'io.corp/local-only', reason: 'no streamable-http or sse remote' },
        { server: 'com.vendor/notes', reason: 'name "notes" is taken by a configured backend' },
      ],
    })

    // RFC 6750 §3.1: a 401 on a token we held valid (revoked early): one refresh, one retry.
    registryFixture.state.rejected.add(t2)
    const unauthorizedBefore = registryFixture.counts.unauthorized
    expect((await list(source)).length).toBe(SERVERS.length)
    expect(registryFixture.counts.unauthorized).toBe(unauthorizedBefore + 1)
    const fourth = await stored()
    expect(fourth?.accessToken).not.toBe(t2)

    // 403: signed in, but not allowed.
    registryFixture.state.forbidden.add('alice')
    await expect(list(source)).rejects.toMatchObject({
      kind: 'forbidden',
      message: 'registry "corp": signed in but not allowed to list servers (HTTP 403)',
    })
    registryFixture.state.forbidden.clear()
    secretsExtra.push(fourth!.accessToken, fourth!.refreshToken!)
    seen.push(...seenLogs.flat())

    // RFC 9700 §4.14.2: with rotation the old refresh token is dead (and replaying it revokes the
    // grant), so only the persisted rotated one could have refreshed above.
    const reuse = await idp.refresh({ client_id: registry.auth!.clientId }, first!.refreshToken!)
    expect(reuse.body.error).toBe('invalid_grant')

    // Nothing readable in clear under stateDir, and no token in any log at trace level.
    const secrets = [...secretsExtra, ...[first, second, third].flatMap((t) => [t!.accessToken, t!.refreshToken!])]
    const files = readdirSync(config.stateDir).map((f) => readFileSync(join(config.stateDir, f), 'utf8'))
    expect(files.length).toBeGreaterThan(0)
    for (const secret of secrets) {
      for (const text of [...files, ...seen]) expect(text).not.toContain(secret)
    }
    for (const text of files) expect(text).not.toContain('alice')
  })

  it('logout revokes the refresh token (RFC 7009) and forgets the sign-in', async () => {
    expect((await login()).code).toBe(0)
    const before = await stored()
    expect(before?.refreshToken).toBeDefined()
    const r = run(['registry', 'logout', '--config', file, '--registry', 'corp'])
    const out = await r.done
    expect(out).toMatchObject({ code: 0, stdout: 'signed out of registry corp (refresh token revoked)\n' })
    expect(await stored()).toBeUndefined()
    const reuse = await idp.refresh({ client_id: config.registries[0]!.auth!.clientId }, before!.refreshToken!)
    expect(reuse.body.error).toBe('invalid_grant')
    const s = await run(['registry', 'status', '--config', file]).done
    expect(s.stdout).toContain("not signed in: run 'vmcp registry login --registry corp'")
  })

  it('with Redis storage the sign-in and the last listing live in Redis, sealed; status reads them; a reload-configured backend takes its name from a registry backend', async () => {
    const redis = await startRedis()
    const redisDir = mkdtempSync(join(tmpdir(), 'vmcp-registry-redis-'))
    const redisFile = join(redisDir, 'vmcp.yaml')
    writeFileSync(join(redisDir, 'storage.key'), `${randomBytes(32).toString('hex')}\n`)
    const self = 'http://127.0.0.1:4999'
    const modeB = `incomingAuth: { type: oidc, oidc: { issuer: ${self}, audience: ${self}/mcp, resource: ${self}/mcp } }
authServer:
  runConfig:
    issuer: ${self}
    allowedAudiences: [${self}/mcp]
    upstreams: [{ name: corp, type: oidc, oidc: { issuerUrl: ${idp.issuer}, clientId: vmcp } }]
    storage: { type: redis, redis: { url: ${redis.url}, keyPrefix: 'reg-test:' }, encryptionKey: { file: storage.key } }
`
    writeFileSync(redisFile, `${modeB}${readFileSync(file, 'utf8')}`)
    const redisConfig = loadConfigFile(redisFile).config
    const key = registryTokenKey(REGISTRY_URL, redisConfig.registries[0]!.auth!.issuer)
    const { logger } = memoryLogger()
    const raw = createRedisStore({ url: redis.url, keyPrefix: 'reg-test:', logger })
    try {
      expect((await login(undefined, redisFile)).code).toBe(0)
      // In Redis under the same REGISTRY_OAUTH_ key, sealed: neither the token nor the user in clear.
      const sealed = await raw.get<string>('registry', key)
      expect(sealed).toMatch(/^v1\./)
      const store = await createRegistryTokenStoreFromConfig(redisConfig, logger)
      const tokens = await store.get(key)
      await store.close()
      expect(tokens?.signedInAs).toBe('alice')
      for (const secret of [tokens!.accessToken, tokens!.refreshToken!, 'alice']) expect(sealed).not.toContain(secret)
      // Nothing of it on disk.
      expect(readdirSync(redisDir).sort()).toEqual(['storage.key', 'vmcp.yaml'])

      let st = await run(['registry', 'status', '--config', redisFile]).done
      expect(st.code).toBe(0)
      expect(st.stdout).toMatch(/^corp\t[^\t]+\tsigned in as alice\taccess token valid until [^\t]+, refreshable\tnot listed yet \(vmcp serve lists it\)\n$/)

      // serve lists with the sign-in from Redis and records the listing there.
      registryFixture.state.servers = [{ name: 'io.corp/jira', version: '1.0.0', remotes: [{ type: 'streamable-http', url: jira.url }] }]
      const gw = await startVmcp(readFileSync(redisFile, 'utf8'), { baseDir: redisDir })
      try {
        await vi.waitFor(() => expect(gw.vmcp.registries.status()[0]?.state).toBe('ok'), EVENTUALLY)
        expect(gw.vmcp.registries.status()[0]?.backends).toEqual(['jira'])
        // Hot reload: a configured backend named jira takes the name from the registry's.
        const next = parseConfigText(
          `${readFileSync(redisFile, 'utf8')}\nbackends:\n  - { name: jira, transport: streamable-http, url: ${JSON.stringify(notes.url)} }\n`,
          { baseDir: redisDir },
        )
        next.server = gw.config.server
        expect(await gw.vmcp.reload(next)).toMatchObject({ added: ['jira'], removed: [], changed: [], refused: [] })
        expect(gw.vmcp.registries.status()[0]?.backends).toEqual([])
        const jiraRuntime = () => gw.vmcp.gateway.routing.runtime('jira')
        expect(jiraRuntime()).toMatchObject({ health: 'healthy', config: { url: notes.url } })
        // The next listing still names jira: it stays the configured one.
        await gw.vmcp.registries.syncNow()
        expect(gw.vmcp.registries.status()[0]).toMatchObject({ state: 'ok', backends: [] })
        expect(jiraRuntime()?.config).toMatchObject({ url: notes.url })
        // Registries reload live too: removed, the poller stops; back, a new one lists them.
        const reloadText = async (text: string) => {
          const c = parseConfigText(text, { baseDir: redisDir })
          c.server = gw.config.server
          return gw.vmcp.reload(c)
        }
        expect(await reloadText(modeB)).toMatchObject({ registries: true, removed: ['jira'], restartRequired: [] })
        expect(gw.vmcp.registries.status()).toEqual([])
        expect(gw.vmcp.gateway.status().backends).toEqual([])
        expect(await reloadText(readFileSync(redisFile, 'utf8'))).toMatchObject({ registries: true, removed: [] })
        await vi.waitFor(() => expect(gw.vmcp.registries.status()[0]).toMatchObject({ state: 'ok', backends: ['jira'] }), EVENTUALLY)
        expect(jiraRuntime()?.config).toMatchObject({ url: jira.url })
      } finally {
        await gw.close()
        registryFixture.state.servers = SERVERS
      }
      st = await run(['registry', 'status', '--config', redisFile]).done
      expect(st.stdout).toMatch(/\tlast listing \d{4}-\d\d-\d\dT[^\t]+: 1 server\(s\), 1 backend\(s\)\n$/)
      // serve kept its signing key under stateDir, and nothing of the registry.
      const onDisk = readdirSync(redisDir, { recursive: true }).map(String)
      expect(onDisk.filter((f) => f.includes('registry'))).toEqual([])
    } finally {
      await raw.close()
      await redis.close()
    }
  })
})
