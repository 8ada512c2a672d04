import { describe, expect, it } from 'vitest'
import { RequestStateCodec, RequestStateError } from '../../../src/mcp/modern/request-state.js'

const ALICE = 'https://idp.example\u0000alice'
const BOB = 'https://idp.example\u0000bob'
const CLAIMS = {
  backend: 'nova',
  method: 'tools/call',
  target: 'confirm',
  state: 'backend-own-state',
} as const

function codec(now = () => 1_800_000_000_000, key = new Uint8Array(32).fill(7)) {
  return new RequestStateCodec({ key, ttlSeconds: 60, now })
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

  it('refuses a key shorter than 32 bytes', () => {
    expect(() => new RequestStateCodec({ key: new Uint8Array(16), ttlSeconds: 60 })).toThrow(
      RangeError,
    )
  })
})
