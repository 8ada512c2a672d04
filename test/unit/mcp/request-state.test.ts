import { describe, expect, it } from 'vitest'
import { SignJWT } from 'jose'
import {
  deriveRequestStateKey,
  RequestStateCodec,
  RequestStateError,
} from '../../../src/mcp/modern/request-state.js'

const ALICE = 'https://idp.example\u0000alice'
const BOB = 'https://idp.example\u0000bob'
const CLAIMS = {
  backend: 'nova',
  method: 'tools/call',
  target: 'confirm',
  state: 'backend-own-state',
} as const

const AUDIENCE = 'https://vmcp.example/mcp'

function codec(
  now = () => 1_800_000_000_000,
  key = new Uint8Array(32).fill(7),
  audience = AUDIENCE,
) {
  return new RequestStateCodec({ key, audience, ttlSeconds: 60, now })
}

async function refusal(p: Promise<unknown>): Promise<RequestStateError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(RequestStateError)
  return err as RequestStateError
}

describe('requestState sealing (MCP 2026-07-28 §Multi Round-Trip Requests)', () => {
  it('round-trips the backend, request, backend state and hold for the same caller', async () => {
    const c = codec()
    const token = await c.mint({ ...CLAIMS, hold: 'h1', round: 2 }, ALICE)
    expect(await c.open(token, ALICE, 'tools/call', 'confirm')).toEqual({
      ...CLAIMS,
      hold: 'h1',
      round: 2,
    })
    // Signed, not encrypted, and the identity itself never appears in it.
    expect(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).not.toContain('alice')
  })

  it('refuses a state whose payload was altered (any byte), as -32602 "signature"', async () => {
    const c = codec()
    const token = await c.mint(CLAIMS, ALICE)
    const [h, p, s] = token.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    payload.b = 'other-backend'
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`
    const err = await refusal(c.open(forged, ALICE, 'tools/call', 'confirm'))
    expect(err.code).toBe(-32602)
    expect(err.reason).toBe('signature')
    // A flipped signature character is refused the same way.
    const flipped = `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`
    expect((await refusal(c.open(flipped, ALICE, 'tools/call', 'confirm'))).reason).toBe(
      'signature',
    )
  })

  it('refuses a state minted under another key (another vmcp, or a forger)', async () => {
    const token = await codec(undefined, new Uint8Array(32).fill(9)).mint(CLAIMS, ALICE)
    expect((await refusal(codec().open(token, ALICE, 'tools/call', 'confirm'))).reason).toBe(
      'signature',
    )
  })

  it('refuses an expired state, naming expiry', async () => {
    let now = 1_800_000_000_000
    const c = codec(() => now)
    const token = await c.mint(CLAIMS, ALICE)
    now += 59_000
    await expect(c.open(token, ALICE, 'tools/call', 'confirm')).resolves.toBeDefined()
    now += 2_000
    const err = await refusal(c.open(token, ALICE, 'tools/call', 'confirm'))
    expect(err.reason).toBe('expired')
    expect(err.message).toMatch(/expired/)
  })

  it('refuses a state issued to another caller', async () => {
    const c = codec()
    const token = await c.mint(CLAIMS, ALICE)
    const err = await refusal(c.open(token, BOB, 'tools/call', 'confirm'))
    expect(err.reason).toBe('caller')
    expect(err.message).toBe('requestState was issued to another caller')
  })

  it('refuses a state replayed on another request (other tool, other method)', async () => {
    const c = codec()
    const token = await c.mint(CLAIMS, ALICE)
    expect((await refusal(c.open(token, ALICE, 'tools/call', 'delete_all'))).reason).toBe('request')
    expect((await refusal(c.open(token, ALICE, 'prompts/get', 'confirm'))).reason).toBe('request')
  })

  it('refuses garbage and an unsigned (alg none) token as malformed', async () => {
    const c = codec()
    expect((await refusal(c.open('not-a-token', ALICE, 'tools/call', 'confirm'))).reason).toBe(
      'malformed',
    )
    const none = `${Buffer.from('{"alg":"none","typ":"vmcp-request-state+jwt"}').toString('base64url')}.${Buffer.from('{"b":"nova","m":"tools/call","n":"confirm","exp":9999999999}').toString('base64url')}.`
    expect((await refusal(c.open(none, ALICE, 'tools/call', 'confirm'))).reason).toBe('malformed')
  })

  it('RFC 7519 §4.1.3: refuses a state sealed under the same key for another server (aud)', async () => {
    const token = await codec(undefined, undefined, 'https://other.example/mcp').mint(CLAIMS, ALICE)
    const err = await refusal(codec().open(token, ALICE, 'tools/call', 'confirm'))
    expect(err.reason).toBe('audience')
    expect(err.message).toBe('requestState was issued for another server')
    // A state without aud at all (signed under the key by anything else) is refused too.
    const key = new Uint8Array(32).fill(7)
    const bare = await new SignJWT({ b: 'nova', m: 'tools/call', n: 'confirm' })
      .setProtectedHeader({ alg: 'HS256', typ: 'vmcp-request-state+jwt' })
      .setExpirationTime('1h')
      .sign(key)
    const now = () => Date.now()
    expect((await refusal(codec(now).open(bare, ALICE, 'tools/call', 'confirm'))).reason).toBe(
      'audience',
    )
  })

  it('derives one key from the same shared material, another from other material', () => {
    const material = new TextEncoder().encode('replica-shared-request-state-key-0123456789')
    const one = deriveRequestStateKey(material)
    expect(one).toHaveLength(32)
    expect(deriveRequestStateKey(material)).toEqual(one)
    expect(deriveRequestStateKey(new TextEncoder().encode('another-shared-key-0123456789abcdef'))).not.toEqual(one)
    // Domain separation: the material itself (Mode B's sealing key) is never the HMAC key.
    expect(Buffer.from(one)).not.toEqual(Buffer.from(material.slice(0, 32)))
  })

  it('refuses a key shorter than 32 bytes', () => {
    expect(
      () => new RequestStateCodec({ key: new Uint8Array(16), audience: AUDIENCE, ttlSeconds: 60 }),
    ).toThrow(RangeError)
  })
})
