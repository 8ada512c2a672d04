import { describe, expect, it } from 'vitest'
import { createHarness, REDIRECT_URI, testConfig, type Harness } from './helpers.js'

const register = (h: Harness, body: unknown, headers: Record<string, string> = {}) =>
  h.registerApp.request('/oauth/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })

async function expectError(
  res: Response,
  status: number,
  error: string,
  description: string | RegExp,
) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/json')
  expect(res.headers.get('cache-control')).toBe('no-store')
  const body = (await res.json()) as { error: string; error_description: string }
  expect(body.error).toBe(error)
  if (typeof description === 'string') expect(body.error_description).toBe(description)
  else expect(body.error_description).toMatch(description)
}

describe('POST /oauth/register (RFC 7591)', () => {
  it('RFC 7591 §3.2.1: registers a public client by default and answers 201 with its metadata', async () => {
    const h = await createHarness()
    const res = await register(h, {
      redirect_uris: [REDIRECT_URI, 'com.example.app:/oauth2redirect', 'https://app.example/cb'],
      client_name: 'Example',
      scope: 'openid profile',
      unknown_field: 'ignored (RFC 7591 §2)',
    })
    expect(res.status).toBe(201)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const body = (await res.json()) as Record<string, unknown>
    expect(body).toEqual({
      client_id: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      client_id_issued_at: expect.any(Number),
      redirect_uris: [REDIRECT_URI, 'com.example.app:/oauth2redirect', 'https://app.example/cb'],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      client_name: 'Example',
      scope: 'openid profile',
    })
    const stored = await h.clients.getClient(body.client_id as string)
    expect(stored).toMatchObject({ tokenEndpointAuthMethod: 'none', clientName: 'Example' })
    expect(stored?.clientSecretHash).toBeUndefined()
  })

  it('confidential clients get a 256-bit secret, stored only as its SHA-256, that never expires', async () => {
    const h = await createHarness()
    const res = await register(h, {
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    })
    expect(res.status).toBe(201)
    const body = (await res.json()) as {
      client_id: string
      client_secret: string
      client_secret_expires_at: number
    }
    expect(body.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(body.client_secret_expires_at).toBe(0)
    const stored = await h.clients.getClient(body.client_id)
    expect(JSON.stringify(stored)).not.toContain(body.client_secret)
    expect(h.clients.verifyClientSecret(stored!, body.client_secret)).toBe(true)
    expect(h.clients.verifyClientSecret(stored!, `${body.client_secret}x`)).toBe(false)
  })

  const rejections: Array<[string, unknown, string, string | RegExp]> = [
    [
      'RFC 7591 §2: redirect_uris is required',
      {},
      'invalid_redirect_uri',
      'redirect_uris must be a non-empty array',
    ],
    [
      'at most 10 redirect URIs',
      { redirect_uris: Array.from({ length: 11 }, (_, i) => `https://app.example/cb${i}`) },
      'invalid_redirect_uri',
      'at most 10 redirect_uris are allowed',
    ],
    [
      'RFC 6749 §3.1.2: no fragment',
      { redirect_uris: ['https://app.example/cb#frag'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must not contain a fragment',
    ],
    [
      'RFC 6749 §3.1.2: absolute URI',
      { redirect_uris: ['/relative/cb'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must be an absolute URI',
    ],
    [
      'RFC 8252 §7.3: http only on loopback',
      { redirect_uris: ['https://ok.example/cb', 'http://app.example/cb'] },
      'invalid_redirect_uri',
      'redirect_uris[1] must use https; http is allowed only for 127.0.0.1, [::1] and localhost',
    ],
    [
      'javascript: scheme',
      { redirect_uris: ['javascript:alert(1)'] },
      'invalid_redirect_uri',
      'redirect_uris[0] uses the scheme javascript:; only https, loopback http and reverse-DNS private-use schemes such as com.example.app: are allowed (RFC 8252 section 7.1)',
    ],
    [
      'data: scheme',
      { redirect_uris: ['data:text/html,x'] },
      'invalid_redirect_uri',
      'redirect_uris[0] uses the scheme data:; only https, loopback http and reverse-DNS private-use schemes such as com.example.app: are allowed (RFC 8252 section 7.1)',
    ],
    [
      'file: scheme',
      { redirect_uris: ['file:///etc/passwd'] },
      'invalid_redirect_uri',
      'redirect_uris[0] uses the scheme file:; only https, loopback http and reverse-DNS private-use schemes such as com.example.app: are allowed (RFC 8252 section 7.1)',
    ],
    [
      'userinfo in redirect URI',
      { redirect_uris: ['https://good.example@evil.example/cb'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must not contain userinfo',
    ],
    [
      'RFC 8252 §7.1: a private-use scheme not in reverse-DNS form',
      { redirect_uris: ['x-evil:/cb'] },
      'invalid_redirect_uri',
      'redirect_uris[0] uses the scheme x-evil:; only https, loopback http and reverse-DNS private-use schemes such as com.example.app: are allowed (RFC 8252 section 7.1)',
    ],
    [
      'a backslash that hides a different host (canonical form only)',
      { redirect_uris: ['http://localhost\\@evil.example/cb'] },
      'invalid_redirect_uri',
      "redirect_uris[0] is not in canonical form (it parses as 'http://localhost/@evil.example/cb')",
    ],
    [
      'an upper-case scheme (canonical form only)',
      { redirect_uris: ['HTTP://127.0.0.1/cb'] },
      'invalid_redirect_uri',
      "redirect_uris[0] is not in canonical form (it parses as 'http://127.0.0.1/cb')",
    ],
    [
      'a loopback URI without a path (canonical form only)',
      { redirect_uris: ['http://127.0.0.1:8080'] },
      'invalid_redirect_uri',
      "redirect_uris[0] is not in canonical form (it parses as 'http://127.0.0.1:8080/')",
    ],
    [
      'userinfo in an https redirect URI',
      { redirect_uris: ['https://user@a.example/cb'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must not contain userinfo',
    ],
    [
      'userinfo in a private-use redirect URI',
      { redirect_uris: ['com.example.app://user@cb/x'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must not contain userinfo',
    ],
    [
      'a fragment (RFC 6749 §3.1.2)',
      { redirect_uris: ['https://a.example/cb#frag'] },
      'invalid_redirect_uri',
      'redirect_uris[0] must not contain a fragment',
    ],
    [
      'unsupported token_endpoint_auth_method',
      { redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'private_key_jwt' },
      'invalid_client_metadata',
      'token_endpoint_auth_method must be one of none, client_secret_basic, client_secret_post',
    ],
    [
      'unsupported grant type',
      { redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'client_credentials'] },
      'invalid_client_metadata',
      "grant_types value 'client_credentials' is not supported (supported: authorization_code, refresh_token)",
    ],
    [
      'unsupported response type',
      { redirect_uris: [REDIRECT_URI], response_types: ['token'] },
      'invalid_client_metadata',
      "response_types value 'token' is not supported (supported: code)",
    ],
    [
      'scope outside scopesSupported, named',
      { redirect_uris: [REDIRECT_URI], scope: 'openid admin' },
      'invalid_client_metadata',
      "scope 'admin' is not supported",
    ],
    [
      'client_name too long',
      { redirect_uris: [REDIRECT_URI], client_name: 'x'.repeat(201) },
      'invalid_client_metadata',
      'client_name is longer than 200 characters',
    ],
    [
      'metadata is not an object',
      [1, 2],
      'invalid_client_metadata',
      'client metadata must be a JSON object',
    ],
  ]
  it('RFC 8252 §7.1 and §7.3: canonical https, loopback http and reverse-DNS schemes register', async () => {
    const h = await createHarness()
    const uris = [
      'https://a.example/cb',
      'https://a.example/cb?x=1',
      'http://127.0.0.1/cb',
      'http://127.0.0.1:8080/callback',
      'http://[::1]:8080/cb',
      'http://localhost:3000/cb',
      'com.example.app:/cb',
      'com.example.app:/oauth2redirect/example-provider',
    ]
    const res = await register(h, { redirect_uris: uris })
    expect(res.status).toBe(201)
    expect(((await res.json()) as { redirect_uris: string[] }).redirect_uris).toEqual(uris)
  })

  for (const [name, body, error, description] of rejections) {
    it(`RFC 7591 §3.2.2: rejects ${name}`, async () => {
      const h = await createHarness()
      await expectError(await register(h, body), 400, error, description)
    })
  }

  it('malformed JSON → 400 invalid_client_metadata', async () => {
    const h = await createHarness()
    await expectError(
      await register(h, '{"redirect_uris": ['),
      400,
      'invalid_client_metadata',
      'request body is not valid JSON',
    )
  })

  it('non-JSON content type → 400 invalid_client_metadata', async () => {
    const h = await createHarness()
    await expectError(
      await register(h, JSON.stringify({ redirect_uris: [REDIRECT_URI] }), {
        'content-type': 'text/plain',
      }),
      400,
      'invalid_client_metadata',
      'content type must be application/json',
    )
  })

  it('oversized body → 413 with a JSON error, declared or streamed', async () => {
    const h = await createHarness()
    const big = JSON.stringify({ redirect_uris: [REDIRECT_URI], client_uri: 'x'.repeat(70 * 1024) })
    await expectError(
      await register(h, big),
      413,
      'invalid_client_metadata',
      'request body exceeds 65536 bytes',
    )
    // No Content-Length: a chunked stream is cut off at the limit too.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 80; i++) controller.enqueue(new Uint8Array(1024).fill(0x20))
        controller.close()
      },
    })
    const res = await h.registerApp.request('/oauth/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit)
    await expectError(res, 413, 'invalid_client_metadata', 'request body exceeds 65536 bytes')
  })

  it('rate limit: 429 with Retry-After and too_many_requests after config.rateLimits.register per minute', async () => {
    const h = await createHarness({ config: { rateLimits: { ...testConfig().rateLimits, register: 3 } } })
    h.clock.now = 1_700_000_020_000 // 40 s into a minute window
    for (let i = 0; i < 3; i++)
      expect((await register(h, { redirect_uris: [REDIRECT_URI] })).status).toBe(201)
    const res = await register(h, { redirect_uris: [REDIRECT_URI] })
    expect(res.status).toBe(429)
    // Sliding window: 4 hits this window (the refused one counts) weigh 4 × (1 − e) in the next
    // one; one more fits at e = 0.5, i.e. 20 s to the window's end plus 30 s.
    expect(res.headers.get('retry-after')).toBe('50')
    expect(await res.json()).toEqual({
      error: 'too_many_requests',
      error_description: 'too many requests; retry after 50 s',
    })
    // A client that waits as told gets in (refused requests count too: one that keeps knocking
    // stays out).
    h.clock.now += 50_000
    expect((await register(h, { redirect_uris: [REDIRECT_URI] })).status).toBe(201)
  })

  it('rate limit is a sliding window: the limit spent just before a window boundary is not granted again just after it', async () => {
    const h = await createHarness({ config: { rateLimits: { ...testConfig().rateLimits, register: 3 } } })
    h.clock.now = 1_700_000_039_000 // 59 s into a minute window
    for (let i = 0; i < 3; i++)
      expect((await register(h, { redirect_uris: [REDIRECT_URI] })).status).toBe(201)
    h.clock.now += 2_000 // 1 s into the next window: a fixed window would allow 3 more here
    expect((await register(h, { redirect_uris: [REDIRECT_URI] })).status).toBe(429)
  })

  it('storage down → 503 server_error, never a stack trace', async () => {
    const h = await createHarness()
    h.store.down = true
    await expectError(
      await register(h, { redirect_uris: [REDIRECT_URI] }),
      503,
      'server_error',
      'authorization server storage unavailable',
    )
  })

  it('CORS preflight and 405 for other methods', async () => {
    const h = await createHarness()
    const pre = await h.registerApp.request('/oauth/register', {
      method: 'OPTIONS',
      headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' },
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-origin')).toBe('*')
    const get = await h.registerApp.request('/oauth/register')
    expect(get.status).toBe(405)
  })
})

describe('registration.privateUseSchemes (dotless native-app schemes the operator accepts)', () => {
  // Cursor registers these three in one request; the dotless scheme must not sink the others.
  const CURSOR = [
    'cursor://anysphere.cursor-mcp/oauth/callback',
    'https://www.cursor.com/agents/mcp/oauth/callback',
    'http://localhost:8787/callback',
  ]

  it('RFC 8252 §7.1: a dotless scheme is refused by default', async () => {
    const h = await createHarness()
    await expectError(
      await register(h, { redirect_uris: CURSOR }),
      400,
      'invalid_redirect_uri',
      /^redirect_uris\[0\] uses the scheme cursor:/,
    )
  })

  it('accepts exactly the listed schemes, and nothing else that is dotless', async () => {
    const h = await createHarness({ config: { registration: { privateUseSchemes: ['cursor'] } } })
    const ok = await register(h, { redirect_uris: CURSOR })
    expect(ok.status).toBe(201)
    expect(((await ok.json()) as { redirect_uris: string[] }).redirect_uris).toEqual(CURSOR)
    for (const uri of ['x-evil:/cb', 'cursorx://a/cb', 'javascript:alert(1)']) {
      await expectError(
        await register(h, { redirect_uris: [uri] }),
        400,
        'invalid_redirect_uri',
        /uses the scheme/,
      )
    }
  })
})
