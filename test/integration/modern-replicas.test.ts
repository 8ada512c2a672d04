import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  deriveRequestStateKey,
  RequestStateCodec,
} from '../../src/mcp/modern/request-state.js'
import { startHttpBackend, startTestBackend, type RunningBackend } from '../support/backends.js'
import { startIdp, type Idp } from '../support/idp.js'
import { MODERN_BACKEND, postModern } from '../support/modern.js'
import { startVmcp, type RunningVmcp } from '../support/vmcp.js'

const PUBLIC = 'http://127.0.0.1:4483'
const RESOURCE = `${PUBLIC}/mcp`
const OTHER_PUBLIC = 'http://127.0.0.1:4484'
const SHARED_KEY = 'replica-shared-request-state-key-0123456789'
const CAPS = { elicitation: { form: {} } }

interface InputRequired {
  resultType: string
  inputRequests: Record<string, unknown>
  requestState: string
}

// MCP 2026-07-28 §Multi Round-Trip Requests: the retry of an input_required request may reach
// any replica behind a load balancer. requestState is attacker-controlled input there: replicas
// with the same server.requestStateKey accept each other's state, and nothing else does.
describe('requestState across vmcp replicas', () => {
  let idp: Idp
  let nova: RunningBackend
  let beta: RunningBackend
  /** Two replicas of one deployment: same config, same requestStateKey. */
  let a: RunningVmcp
  let b: RunningVmcp
  /** Same deployment, another key; another deployment (publicUrl), same key; no key at all. */
  let otherKey: RunningVmcp
  let otherDeployment: RunningVmcp
  let unkeyed: RunningVmcp
  let alice: string
  let mallory: string

  const config = (publicUrl: string, key: boolean) => ({
    server: {
      publicUrl,
      ...(key ? { requestStateKey: { env: 'REQUEST_STATE_KEY' } } : {}),
    },
    backends: [
      { name: 'nova', transport: 'streamable-http', url: nova.url },
      { name: 'beta', transport: 'streamable-http', url: beta.url },
    ],
    incomingAuth: {
      type: 'oidc',
      oidc: { issuer: idp.issuer, audience: `${publicUrl}/mcp`, resource: `${publicUrl}/mcp` },
    },
  })
  const withKey = (value: string) => ({ env: { REQUEST_STATE_KEY: value } })

  /** A raw 2026-07-28 tools/call as `token`, optionally the retry of an earlier one. */
  const call = (
    gw: RunningVmcp,
    token: string,
    tool: string,
    args: Record<string, unknown>,
    retry: Record<string, unknown> = {},
  ) =>
    postModern(
      gw.url,
      'tools/call',
      { name: tool, arguments: args, ...retry },
      { authorization: `Bearer ${token}`, 'mcp-name': tool },
      CAPS,
    )
  /** nova_confirm asks for input at replica `gw`: its input_required result. */
  const ask = async (gw: RunningVmcp, token = alice): Promise<InputRequired> => {
    const first = await call(gw, token, 'nova_confirm', { action: 'deploy' })
    const result = first.body.result as InputRequired
    expect(result.resultType).toBe('input_required')
    return result
  }
  const answer = (asked: InputRequired, requestState = asked.requestState) => ({
    inputResponses: {
      [Object.keys(asked.inputRequests)[0] as string]: { action: 'accept', content: { ok: true } },
    },
    requestState,
  })
  const refusedWith = (reason: string, message: string) => ({
    jsonrpc: '2.0',
    id: 1,
    error: { code: -32602, message, data: { reason } },
  })
  const BAD_SIGNATURE = [
    'signature',
    'requestState failed verification (it was altered or not issued by this server)',
  ] as const

  beforeAll(async () => {
    idp = await startIdp()
    nova = await startHttpBackend(MODERN_BACKEND, ['--name', 'nova'])
    beta = await startTestBackend(['--name', 'beta'])
    ;[a, b, otherKey, otherDeployment, unkeyed] = await Promise.all([
      startVmcp(config(PUBLIC, true), withKey(SHARED_KEY)),
      startVmcp(config(PUBLIC, true), withKey(SHARED_KEY)),
      startVmcp(config(PUBLIC, true), withKey(`${SHARED_KEY}-but-another-one`)),
      startVmcp(config(OTHER_PUBLIC, true), withKey(SHARED_KEY)),
      startVmcp(config(PUBLIC, false)),
    ])
    alice = await idp.mintAccessToken({ aud: RESOURCE, sub: 'alice' })
    mallory = await idp.mintAccessToken({ aud: RESOURCE, sub: 'mallory' })
  })
  afterAll(async () => {
    await Promise.allSettled([a, b, otherKey, otherDeployment, unkeyed].map((g) => g?.close()))
    await Promise.allSettled([nova?.close(), beta?.close(), idp?.close()])
  })

  it('refuses, at another replica, a state with any byte of its payload or signature changed', async () => {
    const asked = await ask(a)
    const [h, p, s] = asked.requestState.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    const reissued = (claims: Record<string, unknown>) =>
      `${h}.${Buffer.from(JSON.stringify({ ...payload, ...claims })).toString('base64url')}.${s}`
    const forgeries = [
      reissued({ b: 'beta' }),
      reissued({ exp: (payload.exp as number) + 3600 }),
      reissued({ aud: 'https://elsewhere.example/mcp' }),
      `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`,
    ]
    for (const forged of forgeries) {
      const res = await call(b, alice, 'nova_confirm', { action: 'deploy' }, answer(asked, forged))
      expect(res.body).toEqual(
        refusedWith(...BAD_SIGNATURE),
      )
    }
  })

  it('refuses a state issued to one user when another presents it at another replica', async () => {
    const asked = await ask(a, alice)
    const stolen = await call(b, mallory, 'nova_confirm', { action: 'deploy' }, answer(asked))
    expect(stolen.body).toEqual(refusedWith('caller', 'requestState was issued to another caller'))
  })

  it('refuses an expired state, even one sealed under the shared key', async () => {
    const key = deriveRequestStateKey(new TextEncoder().encode(SHARED_KEY))
    const hourAgo = Date.now() - 3600_000
    const stale = new RequestStateCodec({ key, audience: RESOURCE, ttlSeconds: 600, now: () => hourAgo })
    const asked = await ask(a)
    const state = await stale.mint(
      { backend: 'nova', method: 'tools/call', target: 'nova_confirm' },
      `${idp.issuer}\u0000alice`,
    )
    const res = await call(b, alice, 'nova_confirm', { action: 'deploy' }, answer(asked, state))
    expect(res.body).toEqual(
      refusedWith('expired', 'requestState has expired; send the request again without it'),
    )
  })

  it('refuses a state of another deployment sharing the key (another publicUrl)', async () => {
    const asked = await ask(a)
    const other = await idp.mintAccessToken({ aud: `${OTHER_PUBLIC}/mcp`, sub: 'alice' })
    const res = await call(otherDeployment, other, 'nova_confirm', { action: 'deploy' }, answer(asked))
    expect(res.body).toEqual(
      refusedWith('audience', 'requestState was issued for another server'),
    )
  })

  it('refuses a state from a replica with another key, or with none configured (per process)', async () => {
    for (const [issuer, verifier] of [
      [a, otherKey],
      [a, unkeyed],
      [unkeyed, a],
    ] as const) {
      const asked = await ask(issuer)
      const res = await call(verifier, alice, 'nova_confirm', { action: 'deploy' }, answer(asked))
      expect(res.body).toEqual(
        refusedWith(...BAD_SIGNATURE),
      )
    }
  })

  it('accepts at one replica the state another issued, and the backend completes the call', async () => {
    const asked = await ask(a)
    const done = await call(b, alice, 'nova_confirm', { action: 'deploy' }, answer(asked))
    expect(JSON.stringify(done.body.result)).toContain('nova: deploy confirmed')
    // And back: a state b issued is good at a.
    const again = await ask(b)
    const back = await call(a, alice, 'nova_confirm', { action: 'deploy' }, answer(again))
    expect(JSON.stringify(back.body.result)).toContain('nova: deploy confirmed')
  })

  it('fails, with its clear error, the retry of a held 2025 call that lands on another replica', async () => {
    const first = await call(a, alice, 'beta_ask_user', { question: 'pin?' })
    const asked = first.body.result as InputRequired
    expect(asked.resultType).toBe('input_required')
    const retry = {
      inputResponses: {
        [Object.keys(asked.inputRequests)[0] as string]: {
          action: 'accept',
          content: { answer: '1234' },
        },
      },
      requestState: asked.requestState,
    }
    const elsewhere = await call(b, alice, 'beta_ask_user', { question: 'pin?' }, retry)
    expect(elsewhere.body).toEqual(
      refusedWith(
        'gone',
        'the call this requestState continues is no longer held by this server (it expired, or another instance issued it); send the request again without requestState',
      ),
    )
    // The replica that holds it still completes it.
    const home = await call(a, alice, 'beta_ask_user', { question: 'pin?' }, retry)
    expect(JSON.stringify(home.body.result)).toContain('answer: 1234')
  })
})
