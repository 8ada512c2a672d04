import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto'
import type { Sealer } from './types.js'

const VERSION = 'v1'
const KEY_BYTES = 32
// 96-bit IVs are GCM's native size (NIST SP 800-38D §8.2); random per seal, so never reused in
// practice under one key for the volumes a gateway seals.
const IV_BYTES = 12
const TAG_BYTES = 16

/**
 * AES-256-GCM: `v1.<iv>.<tag>.<ciphertext>`, each part base64url. The version prefix leaves room
 * for key rotation or another cipher without guessing formats. Optional associated data (AAD) is
 * authenticated but not stored: `open` must be given the same AAD (GCM with empty AAD is plain
 * GCM, so values sealed without one still open without one).
 */
export function createSealer(key: Buffer): Sealer {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new RangeError(`sealer key must be exactly ${KEY_BYTES} bytes`)
  }
  // A KeyObject copies the bytes: zeroing or reusing the caller's buffer cannot change our key,
  // and the key never shows up when the sealer is inspected or logged.
  const secretKey = createSecretKey(key)

  return {
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', secretKey, iv, { authTagLength: TAG_BYTES })
      if (aad) cipher.setAAD(Buffer.from(aad, 'utf8'))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      const tag = cipher.getAuthTag()
      return [VERSION, iv, tag, ciphertext]
        .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
        .join('.')
    },

    open(sealed, aad) {
      const parts = typeof sealed === 'string' ? sealed.split('.') : []
      const [version, ivText, tagText, ciphertextText] = parts
      if (parts.length !== 4 || version !== VERSION || ivText === undefined) {
        throw new Error('sealed value is malformed')
      }
      const iv = Buffer.from(ivText, 'base64url')
      const tag = Buffer.from(tagText ?? '', 'base64url')
      // Pinning the tag length matters: GCM would otherwise accept a truncated tag, which is
      // far easier to forge.
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
        throw new Error('sealed value is malformed')
      }
      const decipher = createDecipheriv('aes-256-gcm', secretKey, iv, { authTagLength: TAG_BYTES })
      decipher.setAuthTag(tag)
      if (aad) decipher.setAAD(Buffer.from(aad, 'utf8'))
      try {
        const plaintext = Buffer.concat([
          decipher.update(Buffer.from(ciphertextText ?? '', 'base64url')),
          decipher.final(),
        ])
        return plaintext.toString('utf8')
      } catch {
        // One message for both causes: telling them apart would help an attacker, not a caller.
        throw new Error('sealed value failed authentication (tampered or sealed under another key)')
      }
    },
  }
}
