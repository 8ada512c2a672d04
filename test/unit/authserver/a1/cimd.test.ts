import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FetchLike } from '../../../../src/net/index.js'
import { createHarness, REDIRECT_URI, type LogSink } from './helpers.js'

// Documents are served over real HTTP from 127.0.0.1; the injected fetch maps the https client_id
// URL onto that server, which the production (SSRF-guarded) fetch would rightly refuse.
const ORIGIN = 'https://app.example'
const doc = (path: string, extra: Record<string, unknown> = {}) => ({
  client_id: `${ORIGIN}${path}`,
  client_name: 'CIMD app',
  redirect_uris: [REDIRECT_URI],
  ...extra,
})

let server: Server
let base: string
const hits = new Map<string, number>()

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/'
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const json = (body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(200, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body))
    }
    if (path === '/client.json') return json(doc(path), { 'cache-control': 'public, max-age=600' })
    if (path === '/mismatch.json') return json(doc(path, { client_id: `${ORIGIN}/other.json` }))
    if (path === '/confidential.json')
      return json(doc(path, { token_endpoint_auth_method: 'client_secret_basic' }))
    if (path === '/secret.json') return json(doc(path, { client_secret: 'shh' }))
    if (path === '/bad-redirect.json')
      return json(doc(path, { redirect_uris: ['http://evil.example/cb'] }))
    if (path === '/backslash-redirect.json')
      return json(doc(path, { redirect_uris: ['http://localhost\\@evil.example/cb'] }))
    if (path === '/word-scheme.json') return json(doc(path, { redirect_uris: ['x-evil:/cb'] }))
    if (path === '/big.json') return json(doc(path, { padding: 'x'.repeat(100 * 1024) }))
    if (path === '/redirect.json') {
      res.writeHead(302, { location: `${ORIGIN}/client.json` })
      return res.end()
    }
    res.writeHead(404)
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const mappedFetch: FetchLike = (input, init) =>
  fetch(String(input instanceof Request ? input.url : input).replace(ORIGIN, base), init)

const reasons = (sink: LogSink) =>
  sink
    .records()
    .filter((r) => String(r.msg).startsWith('client ID metadata document'))
    .map((r) => String(r.reason ?? ''))

const cimdConfig = (allowedHosts: string[] = []) => ({ cimd: { enabled: true, allowedHosts } })

describe('Client ID Metadata Documents', () => {
  it('fetches, validates and caches a document (honoring max-age); the client is public', async () => {
    const h = await createHarness({ config: cimdConfig(), fetch: mappedFetch })
    const id = `${ORIGIN}/client.json`
    const client = await h.clients.getClient(id)
    expect(client).toMatchObject({
      clientId: id,
      cimd: true,
      tokenEndpointAuthMethod: 'none',
      redirectUris: [REDIRECT_URI],
      clientName: 'CIMD app',
    })
    const before = hits.get('/client.json')
    await h.clients.getClient(id)
    expect(hits.get('/client.json')).toBe(before)
    // max-age=600 → cached 10 minutes, refetched after.
    h.clock.now += 601_000
    await h.clients.getClient(id)
    expect(hits.get('/client.json')).toBe((before ?? 0) + 1)
  })

  it('a CIMD client completes the code exchange as a public client', async () => {
    const h = await createHarness({ config: cimdConfig(), fetch: mappedFetch })
    const client = (await h.clients.getClient(`${ORIGIN}/client.json`))!
    const { code, verifier } = await h.issueCode(client)
    const res = await h.token({
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      client_id: client.clientId,
    })
    expect(res.status).toBe(200)
  })

  const rejected: Array<[string, string, string | RegExp]> = [
    [
      'client_id in the document must equal its URL exactly',
      '/mismatch.json',
      'client_id in the document does not equal its URL',
    ],
    [
      'only public clients (token_endpoint_auth_method none)',
      '/confidential.json',
      'token_endpoint_auth_method must be none',
    ],
    [
      'no client_secret in a public document',
      '/secret.json',
      'document must not contain client_secret',
    ],
    [
      'redirect URIs validated like registrations',
      '/bad-redirect.json',
      /^invalid_redirect_uri: redirect_uris\[0\] must use https/,
    ],
    [
      'non-canonical redirect URIs, like registrations',
      '/backslash-redirect.json',
      /^invalid_redirect_uri: redirect_uris\[0\] is not in canonical form/,
    ],
    [
      'private-use schemes not in reverse-DNS form, like registrations',
      '/word-scheme.json',
      /^invalid_redirect_uri: redirect_uris\[0\] uses the scheme x-evil:/,
    ],
    ['64 KiB body limit', '/big.json', 'document is larger than 65536 bytes'],
    ['redirects are not followed', '/redirect.json', 'document URL redirects'],
    ['HTTP errors', '/missing.json', 'document answered HTTP 404'],
  ]
  for (const [name, path, reason] of rejected) {
    it(`rejects: ${name}`, async () => {
      const h = await createHarness({ config: cimdConfig(), fetch: mappedFetch })
      expect(await h.clients.getClient(`${ORIGIN}${path}`)).toBeUndefined()
      const logged = reasons(h.sink)
      expect(logged).toHaveLength(1)
      expect(logged[0]).toMatch(reason)
    })
  }

  it('negative results are cached for 60 s', async () => {
    const h = await createHarness({ config: cimdConfig(), fetch: mappedFetch })
    const id = `${ORIGIN}/mismatch.json`
    await h.clients.getClient(id)
    const before = hits.get('/mismatch.json') ?? 0
    await h.clients.getClient(id)
    expect(hits.get('/mismatch.json')).toBe(before)
    h.clock.now += 61_000
    await h.clients.getClient(id)
    expect(hits.get('/mismatch.json')).toBe(before + 1)
  })

  it('URL rules: https with a path, no fragment or userinfo, canonical', async () => {
    const h = await createHarness({ config: cimdConfig(), fetch: mappedFetch })
    // Not https: not a CIMD URL at all, just an unknown client id.
    expect(await h.clients.getClient(`${base}/client.json`)).toBeUndefined()
    expect(reasons(h.sink)).toEqual([])
    for (const [id, reason] of [
      [`${ORIGIN}/`, 'must have a path'],
      [`${ORIGIN}/client.json#x`, 'must not contain a fragment'],
      ['https://user@app.example/client.json', 'must not contain userinfo'],
      [`${ORIGIN}/a/../client.json`, 'must not contain dot segments'],
      ['https://APP.example/client.json', 'must be in canonical form'],
    ] as const) {
      expect(await h.clients.getClient(id)).toBeUndefined()
      expect(reasons(h.sink).at(-1)).toBe(reason)
    }
  })

  it('cimd.allowedHosts: hosts outside a non-empty list are refused without a fetch', async () => {
    const h = await createHarness({ config: cimdConfig(['other.example']), fetch: mappedFetch })
    const before = hits.get('/client.json') ?? 0
    expect(await h.clients.getClient(`${ORIGIN}/client.json`)).toBeUndefined()
    expect(hits.get('/client.json') ?? 0).toBe(before)
    expect(reasons(h.sink)).toEqual(['host is not in cimd.allowedHosts'])

    const allowed = await createHarness({ config: cimdConfig(['app.example']), fetch: mappedFetch })
    expect(await allowed.clients.getClient(`${ORIGIN}/client.json`)).toBeDefined()
  })

  it('SSRF: the default guarded fetch refuses a document at a private address', async () => {
    const h = await createHarness({ config: cimdConfig() })
    expect(await h.clients.getClient('https://127.0.0.1/client.json')).toBeUndefined()
    expect(reasons(h.sink)).toEqual(['refusing to connect to internal address of 127.0.0.1'])
    expect(await h.clients.getClient('https://[::1]/client.json')).toBeUndefined()
    expect(reasons(h.sink).at(-1)).toMatch(/internal address/)
  })

  it('with cimd disabled an https client_id is just an unknown client, never fetched', async () => {
    let fetched = 0
    const h = await createHarness({
      fetch: async (input, init) => {
        fetched++
        return mappedFetch(input, init)
      },
    })
    expect(await h.clients.getClient(`${ORIGIN}/client.json`)).toBeUndefined()
    expect(fetched).toBe(0)
  })
})
