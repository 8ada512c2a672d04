import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createSealer } from '../../../src/storage/index.js'

const key = randomBytes(32)

// Flips one bit of byte `index` inside the base64url part `part` of a sealed string.
function tamper(sealed: string, part: 1 | 2 | 3, index = 0): string {
  const parts = sealed.split('.')
  const bytes = Buffer.from(parts[part]!, 'base64url')
  bytes[index] = bytes[index]! ^ 0x01
  parts[part] = bytes.toString('base64url')
  return parts.join('.')
}

describe('sealer (AES-256-GCM)', () => {
  it('round-trips text in the v1 format', () => {
    const sealer = createSealer(key)
    for (const text of ['upstream-access-token', '', 'ünïcødé ✓', 'x'.repeat(10_000)]) {
      const sealed = sealer.seal(text)
      expect(sealed).toMatch(/^v1\.[\w-]{16}\.[\w-]{22}\.[\w-]*$/)
      expect(sealer.open(sealed)).toBe(text)
    }
  })

  it('opens with a second sealer built from the same key bytes', () => {
    const sealed = createSealer(key).seal('secret')
    expect(createSealer(Buffer.from(key)).open(sealed)).toBe('secret')
  })

  it('does not depend on the caller keeping the key buffer intact', () => {
    const mine = Buffer.from(key)
    const sealer = createSealer(mine)
    const sealed = sealer.seal('secret')
    mine.fill(0)
    expect(sealer.open(sealed)).toBe('secret')
  })

  it('never repeats a ciphertext for the same text (random IV)', () => {
    const sealer = createSealer(key)
    const a = sealer.seal('same text')
    const b = sealer.seal('same text')
    expect(a).not.toBe(b)
    expect(a.split('.')[1]).not.toBe(b.split('.')[1])
  })

  it('throws when any part was tampered with', () => {
    const sealer = createSealer(key)
    const sealed = sealer.seal('upstream-access-token')
    for (const part of [1, 2, 3] as const) {
      expect(() => sealer.open(tamper(sealed, part))).toThrow(/failed authentication/)
    }
    expect(() => sealer.open(tamper(sealed, 3, 5))).toThrow(/failed authentication/)
  })

  it('throws when sealed under another key', () => {
    const sealed = createSealer(key).seal('secret')
    expect(() => createSealer(randomBytes(32)).open(sealed)).toThrow(/failed authentication/)
  })

  it('throws on malformed input, including a truncated tag', () => {
    const sealer = createSealer(key)
    const [v, iv, tag, ct] = sealer.seal('secret').split('.')
    for (const bad of [
      '',
      'not sealed',
      `v2.${iv}.${tag}.${ct}`,
      `v1.${iv}.${tag}`,
      `v1.${iv}.${tag!.slice(0, 8)}.${ct}`,
      `v1.${iv!.slice(0, 4)}.${tag}.${ct}`,
      `${v}.${iv}.${tag}.${ct}.extra`,
    ]) {
      expect(() => sealer.open(bad), bad).toThrow()
    }
  })

  it('accepts only 32-byte keys', () => {
    expect(() => createSealer(randomBytes(31))).toThrow(RangeError)
    expect(() => createSealer(randomBytes(33))).toThrow(RangeError)
    expect(() => createSealer(Buffer.alloc(0))).toThrow(RangeError)
    expect(() => createSealer('x'.repeat(32) as unknown as Buffer)).toThrow(RangeError)
  })

  it('binds associated data: the same AAD opens, another (or none) does not', () => {
    const sealer = createSealer(key)
    const sealed = sealer.seal('{"clientId":"c"}', 'vmcp:grant:abc')
    expect(sealer.open(sealed, 'vmcp:grant:abc')).toBe('{"clientId":"c"}')
    expect(() => sealer.open(sealed, 'vmcp:grant:abd')).toThrow(/failed authentication/)
    expect(() => sealer.open(sealed)).toThrow(/failed authentication/)
    expect(() => sealer.open(sealer.seal('x'), 'vmcp:grant:abc')).toThrow(/failed authentication/)
  })
})
