import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../../fixtures/datadog-like/datadog-like.mjs'
import {
  createFileDcrStore,
  createMemoryDcrStore,
  createRedisDcrStore,
  DcrUnavailableError,
} from '../../../src/dcr/index.js'
import { redisCommand, startRedis } from '../../support/redis.js'
import { memoryLogger } from '../../support/vmcp.js'
import { CALLBACK, harness, spec, startStub, VMCP_ISSUER, type Harness } from './support.js'

const WAIT = { timeout: 15_000 }
const ready = (h: Harness, name: string) =>
  vi.waitFor(() => expect(h.manager.upstream(name)?.status().state).toBe('ready'), WAIT)
const unavailable = (h: Harness, name: string) =>
  vi.waitFor(() => expect(h.manager.upstream(name)?.status().state).toBe('unavailable'), WAIT)

describe('registration lifecycle against the Datadog-like server', () => {
  let dd: DatadogLike
  beforeAll(async () => {
    dd = await startDatadogLike({ secretTtl: 3600 })
  })
  afterAll(async () => {
    await dd?.close()
  })

  it('start() returns at once; the upstream is unavailable until registered, then ready with one info record', async () => {
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })])
    const before = dd.counts.registrations
    h.manager.start()
    expect(() => h.manager.upstream('datadog')?.client()).toThrow(DcrUnavailableError)
    expect(() => h.manager.upstream('datadog')?.client()).toThrow(
      'upstream datadog is not available: registration has not completed yet',
    )
    await ready(h, 'datadog')
    expect(dd.counts.registrations).toBe(before + 1)
    const client = h.manager.upstream('datadog')?.client()
    expect(client).toMatchObject({
      tokenEndpointAuthMethod: 'client_secret_post',
      server: { issuer: dd.issuer, token_endpoint: `${dd.issuer}/token` },
    })
    const success = h.records().filter((r) => r.msg === 'dcr registration succeeded')
    expect(success).toHaveLength(1)
    expect(success[0]).toMatchObject({
      level: 30,
      upstream: 'datadog',
      issuer: dd.issuer,
      client_id: client?.clientId,
      redirect_uri: CALLBACK,
    })
    expect(h.logs.join('\n')).not.toContain(client?.clientSecret)
    await h.manager.close()
  })

  it('a second process on the same file store registers nothing (cache hit, no discovery)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vmcp-dcr-mgr-'))
    const first = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      store: await createFileDcrStore({ dataDir, logger: memoryLogger().logger }),
    })
    first.manager.start()
    await ready(first, 'datadog')
    await first.manager.close()
    const counts = { ...dd.counts }
    const second = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      store: await createFileDcrStore({ dataDir, logger: memoryLogger().logger }),
    })
    second.manager.start()
    await ready(second, 'datadog')
    expect(dd.counts).toEqual(counts)
    expect(second.manager.upstream('datadog')?.client().clientId).toBe(
      first.manager.upstream('datadog')?.status().clientId,
    )
    expect(second.records().find((r) => r.msg === 'dcr cache hit')).toMatchObject({
      level: 20,
      dcr_age_days: 0,
    })
    await second.manager.close()
  })

  it('a cached registration older than 90 days logs a warning with dcr_age_days', async () => {
    const store = createMemoryDcrStore()
    const first = harness([spec('datadog', { discoveryUrl: dd.issuer })], { store })
    first.manager.start()
    await ready(first, 'datadog')
    const later = harness([spec('datadog', { discoveryUrl: dd.issuer, renewBefore: 0 })], {
      store,
      now: () => Date.now() + 91 * 86_400_000,
    })
    later.manager.start()
    await vi.waitFor(
      () => expect(later.records().some((r) => r.dcr_age_days === 91 && r.level === 40)).toBe(true),
      WAIT,
    )
    expect(later.lines(/days old/)).toEqual([
      'upstream datadog: the cached registration is 91 days old; consider clearing it with "vmcp dcr forget --upstream datadog" so vmcp registers afresh',
    ])
    await later.manager.close()
  })

  it('a cached secret due for renewal is renewed once; concurrent invalid_client reports share one recovery', async () => {
    const store = createMemoryDcrStore()
    const first = harness([spec('datadog', { discoveryUrl: dd.issuer })], { store })
    first.manager.start()
    await ready(first, 'datadog')
    await first.manager.close()
    // Restarted with a window wider than the secret's life: the cached secret is due at once.
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer, renewBefore: 2 * 3600_000 })], {
      store,
    })
    const before = dd.counts.renewals
    h.manager.start()
    await vi.waitFor(() => expect(h.lines(/client secret renewed/)).toHaveLength(1), WAIT)
    const u = h.manager.upstream('datadog')
    expect(dd.counts.renewals).toBe(before + 1)
    // invalid_client reported by many callers at once while the secret is live: no renewal, one
    // re-registration.
    const registrations = dd.counts.registrations
    const clientId = u?.client().clientId as string
    await Promise.all([1, 2, 3].map(() => u?.onInvalidClient(clientId)))
    expect(dd.counts.renewals).toBe(before + 1)
    expect(dd.counts.registrations).toBe(registrations + 1)
    await h.manager.close()
  })

  it('invalid_client: a warn record that says what to do, then one re-registration (single flight, rate-limited)', async () => {
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })])
    h.manager.start()
    await ready(h, 'datadog')
    const u = h.manager.upstream('datadog')
    const stale = u?.client().clientId as string
    const before = dd.counts.registrations
    const results = await Promise.all([u?.onInvalidClient(stale), u?.onInvalidClient(stale)])
    // Tokens are bound to the old client id: the failed request is not retried; the next sign-in
    // uses the new registration.
    expect(results).toEqual([false, false])
    expect(dd.counts.registrations).toBe(before + 1)
    expect(u?.client().clientId).not.toBe(stale)
    expect(h.lines(/invalid_client/)[0]).toBe(
      `upstream datadog token endpoint answered invalid_client for client ${stale}: the cached registration is probably stale; clear it with "vmcp dcr forget --upstream datadog" and restart (vmcp tries to recover by itself first)`,
    )
    // Rate limit: another invalid_client right away does not register again.
    await u?.onInvalidClient(u.client().clientId)
    expect(dd.counts.registrations).toBe(before + 1)
    await h.manager.close()
  })

  it('invalid_client with an expired secret: RFC 7592 renewal keeps the client id, and the request may be retried', async () => {
    let offset = 0
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      now: () => Date.now() + offset,
    })
    h.manager.start()
    await ready(h, 'datadog')
    const u = h.manager.upstream('datadog')
    const before = { ...u?.client() }
    const counts = { ...dd.counts }
    offset = 2 * 3600_000 // past the secret's expiry
    expect(await u?.onInvalidClient(before.clientId as string)).toBe(true)
    expect(dd.counts.renewals).toBe(counts.renewals + 1)
    expect(dd.counts.registrations).toBe(counts.registrations)
    expect(u?.client().clientId).toBe(before.clientId)
    expect(u?.client().clientSecret).not.toBe(before.clientSecret)
    await h.manager.close()
  })

  it('autoReregister: false only logs the remediation', async () => {
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer, autoReregister: false })])
    h.manager.start()
    await ready(h, 'datadog')
    const before = dd.counts.registrations
    const u = h.manager.upstream('datadog')
    expect(await u?.onInvalidClient(u.client().clientId)).toBe(false)
    expect(dd.counts.registrations).toBe(before)
    expect(h.lines(/invalid_client/)).toHaveLength(1)
    await h.manager.close()
  })

  it('a redirect URI the server has not allow-listed: an error line naming the URI to allow-list, then retries', async () => {
    dd.state.allowedRedirectUris = ['https://someone-else.example/cb']
    try {
      const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], { retryMs: 50 })
      h.manager.start()
      await vi.waitFor(() => expect(h.lines(/allow-list/).length).toBeGreaterThanOrEqual(2), WAIT)
      expect(h.lines(/allow-list/)[0]).toBe(
        `upstream datadog rejected vmcp's redirect URI: ask an administrator of ${dd.issuer} to allow-list ${CALLBACK} (registration at ${dd.issuer}/reg failed with HTTP 400 invalid_redirect_uri: redirect_uri is not allow-listed for this organization; ask an administrator to add it); retrying in 50 ms`,
      )
      expect(h.records().find((r) => String(r.msg).includes('allow-list'))).toMatchObject({
        level: 50,
        error: 'invalid_redirect_uri',
        status: 400,
        redirect_uri: CALLBACK,
      })
      // Backoff doubles.
      expect(h.lines(/allow-list/)[1]).toMatch(/retrying in 100 ms$/)
      // Once allow-listed, the retry succeeds by itself.
      dd.state.allowedRedirectUris = [CALLBACK]
      await ready(h, 'datadog')
      await h.manager.close()
    } finally {
      dd.state.allowedRedirectUris = undefined
    }
  })

  it('a corrupt cache file: warn, register once, never crash', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vmcp-dcr-corrupt-'))
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(dataDir, 'dcr-credentials.json'), 'not json at all')
    const { logger, logs } = memoryLogger('trace')
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      store: await createFileDcrStore({ dataDir, logger }),
    })
    const before = dd.counts.registrations
    h.manager.start()
    await ready(h, 'datadog')
    expect(dd.counts.registrations).toBe(before + 1)
    expect(logs.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain(
      `dcr cache file ${join(dataDir, 'dcr-credentials.json')} is corrupt; ignoring it: upstreams register again and the file is rewritten`,
    )
    await h.manager.close()
  })

  it('a cache sealed with another key: warn, register once, never crash', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vmcp-dcr-otherkey-'))
    const first = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      store: await createFileDcrStore({
        dataDir,
        key: Buffer.alloc(32, 1),
        logger: memoryLogger().logger,
      }),
    })
    first.manager.start()
    await ready(first, 'datadog')
    await first.manager.close()
    const { logger, logs } = memoryLogger('trace')
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], {
      store: await createFileDcrStore({ dataDir, key: Buffer.alloc(32, 2), logger }),
    })
    const before = dd.counts.registrations
    h.manager.start()
    await ready(h, 'datadog')
    expect(dd.counts.registrations).toBe(before + 1)
    expect(logs.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain(
      'dcr cache entry for upstream datadog cannot be decrypted (sealed under another key, or tampered with); ignoring it and registering again',
    )
    await h.manager.close()
  })

  it('invalid_client_metadata from the server: the server’s error and description in the warn line', async () => {
    const stub = await startStub((req, res, origin) => {
      if (req.url?.startsWith('/.well-known/')) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            issuer: origin,
            authorization_endpoint: `${origin}/a`,
            token_endpoint: `${origin}/t`,
            registration_endpoint: `${origin}/register`,
          }),
        )
        return
      }
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          error: 'invalid_client_metadata',
          error_description: 'scope mcp is not allowed',
        }),
      )
    })
    try {
      const h = harness([spec('other', { discoveryUrl: stub.origin })])
      h.manager.start()
      await unavailable(h, 'other')
      expect(h.lines(/unavailable/)).toEqual([
        `upstream other unavailable: registration at ${stub.origin}/register failed with HTTP 400 invalid_client_metadata: scope mcp is not allowed; retrying in 60 s`,
      ])
      expect(h.records().find((r) => r.level === 40)).toMatchObject({
        step: 'registration',
        error: 'invalid_client_metadata',
        error_description: 'scope mcp is not allowed',
        status: 400,
      })
      expect(() => h.manager.upstream('other')?.client()).toThrow(
        `upstream other is not available: registration at ${stub.origin}/register failed with HTTP 400 invalid_client_metadata: scope mcp is not allowed`,
      )
      await h.manager.close()
    } finally {
      await stub.close()
    }
  })
})

describe('what the registration request carries', () => {
  it('RFC 7591 §3: the initial access token as Bearer, software_id and software_statement forwarded; none of it logged', async () => {
    const IAT = 'initial-access-token-canary-0123456789'
    const STATEMENT = 'eyJhbGciOiJub25lIn0.eyJzb2Z0d2FyZV9pZCI6InN3LTEifQ.statement-canary'
    const seen: Array<{ authorization?: string; body: Record<string, unknown> }> = []
    const stub = await startStub((req, res, origin) => {
      if (req.url?.startsWith('/.well-known/')) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            issuer: origin,
            authorization_endpoint: `${origin}/a`,
            token_endpoint: `${origin}/t`,
            registration_endpoint: `${origin}/register`,
            token_endpoint_auth_methods_supported: ['client_secret_post'],
          }),
        )
        return
      }
      let text = ''
      req.on('data', (c: Buffer) => (text += c.toString()))
      req.on('end', () => {
        seen.push({
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
          body: JSON.parse(text) as Record<string, unknown>,
        })
        res.writeHead(201, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            client_id: 'c1',
            client_secret: 'registered-secret-canary-0123456789',
            client_secret_expires_at: 0,
          }),
        )
      })
    })
    try {
      const { Secret } = await import('../../../src/log/index.js')
      const h = harness([
        spec(
          'x',
          {
            discoveryUrl: stub.origin,
            initialAccessToken: new Secret(IAT),
            softwareId: 'sw-1',
            softwareStatement: new Secret(STATEMENT),
          },
          ['mcp', 'openid'],
        ),
      ])
      h.manager.start()
      await ready(h, 'x')
      expect(seen).toEqual([
        {
          authorization: `Bearer ${IAT}`,
          body: {
            redirect_uris: [CALLBACK],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            client_name: 'vmcp',
            scope: 'mcp openid',
            software_id: 'sw-1',
            software_statement: STATEMENT,
            token_endpoint_auth_method: 'client_secret_post',
          },
        },
      ])
      expect(h.manager.upstream('x')?.client()).toMatchObject({
        clientId: 'c1',
        tokenEndpointAuthMethod: 'client_secret_post',
      })
      const text = h.logs.join('\n')
      for (const s of [IAT, STATEMENT, 'registered-secret-canary-0123456789'])
        expect(text).not.toContain(s)
      await h.manager.close()
    } finally {
      await stub.close()
    }
  })
})

describe('client ID metadata documents (preferClientMetadataDocument)', () => {
  const cimdServer = () =>
    startStub((req, res, origin) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          issuer: origin,
          authorization_endpoint: `${origin}/a`,
          token_endpoint: `${origin}/t`,
          registration_endpoint: `${origin}/register`,
          client_id_metadata_document_supported: true,
        }),
      )
    })

  it('uses <issuer>/oauth/client-metadata.json as client_id: no registration, nothing cached', async () => {
    const stub = await cimdServer()
    try {
      const h = harness(
        [spec('x', { discoveryUrl: stub.origin, preferClientMetadataDocument: true })],
        { allowLoopbackClientMetadata: true },
      )
      h.manager.start()
      await ready(h, 'x')
      expect(h.manager.upstream('x')?.client()).toMatchObject({
        clientId: `${VMCP_ISSUER}/oauth/client-metadata.json`,
        tokenEndpointAuthMethod: 'none',
      })
      expect(stub.requests.filter((r) => r.startsWith('POST'))).toEqual([])
      expect(await h.store.list()).toEqual([])
      await h.manager.close()
    } finally {
      await stub.close()
    }
  })

  it('an http issuer cannot be a client id: warns and registers instead', async () => {
    const stub = await cimdServer()
    try {
      const h = harness([
        spec('x', { discoveryUrl: stub.origin, preferClientMetadataDocument: true }),
      ])
      h.manager.start()
      await vi.waitFor(() => expect(stub.requests).toContain('POST /register'), WAIT)
      expect(h.lines(/client ID metadata documents/)).toEqual([
        "upstream x accepts client ID metadata documents, but vmcp's issuer is not https; registering instead",
      ])
      await h.manager.close()
    } finally {
      await stub.close()
    }
  })
})

describe('discovery failures: the upstream is unavailable with the reason, and retried', () => {
  it.each([
    [
      'times out',
      () => undefined,
      (o: string) =>
        `upstream x unavailable: discovery at ${o}/.well-known/oauth-authorization-server timed out after 200 ms; retrying in 60 s`,
    ],
    [
      'answers non-JSON',
      (_req: unknown, res: import('node:http').ServerResponse) =>
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html/>'),
      (o: string) =>
        `upstream x unavailable: discovery at ${o}/.well-known/oauth-authorization-server did not answer JSON; retrying in 60 s`,
    ],
    [
      'names another issuer',
      (_req: unknown, res: import('node:http').ServerResponse) =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ issuer: 'https://evil.example' })),
      (o: string) =>
        `upstream x unavailable: issuer mismatch (RFC 8414 §3.3) at ${o}/.well-known/oauth-authorization-server: expected ${o}, got https://evil.example; retrying in 60 s`,
    ],
  ])('discovery that %s', async (what, handler, expected) => {
    const stub = await startStub(handler as never)
    try {
      // Only the silent stub needs the short deadline; the others answer, however loaded the machine.
      const h = harness([spec('x', { discoveryUrl: stub.origin })], { timeoutMs: what === 'times out' ? 200 : 60_000 })
      h.manager.start()
      await unavailable(h, 'x')
      expect(h.lines(/unavailable/)).toEqual([expected(stub.origin)])
      await h.manager.close()
    } finally {
      await stub.close()
    }
  })
})

describe('Redis down at startup', () => {
  it('the upstream is unavailable and retried; it registers once Redis is back', async () => {
    const dd = await startDatadogLike()
    const redis = await startRedis()
    await redisCommand(redis.port, 'SHUTDOWN NOSAVE').catch(() => undefined)
    const store = createRedisDcrStore({
      url: redis.url,
      keyPrefix: 'x:',
      key: Buffer.alloc(32, 9),
      logger: memoryLogger().logger,
    })
    const h = harness([spec('datadog', { discoveryUrl: dd.issuer })], { store, retryMs: 100 })
    h.manager.start()
    await unavailable(h, 'datadog')
    expect(h.lines(/unavailable/)[0]).toBe(
      'upstream datadog unavailable: cannot read the registration cache: Redis is unreachable; retrying in 100 ms',
    )
    expect(dd.counts.registrations).toBe(0)
    await redis.restart()
    try {
      await ready(h, 'datadog')
      expect(dd.counts.registrations).toBe(1)
    } finally {
      await h.manager.close()
      await redis.close()
      await dd.close()
    }
  })
})

it('the client metadata document lists vmcp’s callback and uses its own URL as client_id', () => {
  const h = harness([spec('x', { discoveryUrl: 'https://as.example' })])
  expect(h.manager.clientMetadataDocument()).toEqual({
    client_id: `${VMCP_ISSUER}/oauth/client-metadata.json`,
    client_name: 'vmcp',
    redirect_uris: [CALLBACK],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  })
})
