import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  type JsonWebKey as NodeJwk,
  type KeyObject,
} from 'node:crypto'
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { calculateJwkThumbprint, errors as joseErrors, type JWK, type JWTVerifyGetKey } from 'jose'
import { ConfigError, type AuthServerConfig } from '../config/index.js'
import type { Logger } from '../log/index.js'

export type SigningAlg = 'ES256' | 'RS256'

/** A public key published in the JWKS and accepted when verifying our own tokens. */
export interface VerificationKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url). */
  kid: string
  alg: SigningAlg
  publicKey: KeyObject
  /** Public members only, with `kid`, `alg` and `use: sig`. */
  publicJwk: JWK
}

/** The key that signs new tokens. */
export interface SigningKey extends VerificationKey {
  privateKey: KeyObject
}

export interface SigningKeys {
  current: SigningKey
  /** Verification-only keys from `signingKeys.previous` (rotation). */
  previous: readonly VerificationKey[]
  /** The public JWK Set: current + previous, never a private member. */
  jwks(): { keys: JWK[] }
  /**
   * In-process key lookup for jose `jwtVerify`: resolves the header's `kid` (and checks its `alg`)
   * among current + previous keys; throws JWKSNoMatchingKey otherwise, so a caller can fall back.
   */
  getKey: JWTVerifyGetKey
}

export type SigningKeysConfig = Pick<AuthServerConfig, 'signingKeys' | 'dataDir'>

/** File name of the generated key under `dataDir`. */
export const GENERATED_KEY_FILE = 'signing-key.jwk.json'

const MIN_RSA_BITS = 2048
const CONFIG_PATH = 'authServer.runConfig.signingKeys'

function keyError(path: string, message: string): ConfigError {
  return new ConfigError([{ path, message }])
}

interface ParsedKey {
  privateKey?: KeyObject
  publicKey: KeyObject
}

/** Reads a PEM (PKCS#8, PKCS#1, SEC1, SPKI) or JWK file; public keys only where `allowPublic`. */
function parseKeyText(text: string, file: string, where: string, allowPublic: boolean): ParsedKey {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    let jwk: Record<string, unknown>
    try {
      jwk = JSON.parse(trimmed) as Record<string, unknown>
    } catch {
      throw keyError(where, `${file} is neither PEM nor valid JSON (JWK)`)
    }
    if (Array.isArray(jwk.keys)) {
      throw keyError(where, `${file} is a JWK Set; put exactly one JWK per file`)
    }
    // Symmetric keys would make every verifier a signer; RFC 9068 §4 tokens need asymmetric keys.
    if (jwk.kty === 'oct') {
      throw keyError(where, `${file} is a symmetric (oct) key; use an EC P-256 private key`)
    }
    try {
      if (typeof jwk.d === 'string') {
        const privateKey = createPrivateKey({ key: jwk as NodeJwk, format: 'jwk' })
        return { privateKey, publicKey: createPublicKey(privateKey) }
      }
      if (!allowPublic) {
        throw keyError(where, `${file} holds a public JWK; the signing key must be private (d)`)
      }
      return { publicKey: createPublicKey({ key: jwk as NodeJwk, format: 'jwk' }) }
    } catch (err) {
      if (err instanceof ConfigError) throw err
      throw keyError(where, `${file} is not a usable JWK (${(err as Error).message})`)
    }
  }
  if (!trimmed.includes('-----BEGIN')) throw keyError(where, `${file} is neither PEM nor JWK`)
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(trimmed)) {
    throw keyError(
      where,
      `${file} is passphrase-protected; store the key unencrypted with mode 0600`,
    )
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) {
    try {
      const privateKey = createPrivateKey(trimmed)
      return { privateKey, publicKey: createPublicKey(privateKey) }
    } catch (err) {
      throw keyError(where, `${file} is not a usable private key (${(err as Error).message})`)
    }
  }
  if (allowPublic && /-----BEGIN PUBLIC KEY-----/.test(trimmed)) {
    try {
      return { publicKey: createPublicKey(trimmed) }
    } catch (err) {
      throw keyError(where, `${file} is not a usable public key (${(err as Error).message})`)
    }
  }
  throw keyError(where, `${file} holds no ${allowPublic ? 'private or public' : 'private'} key`)
}

/** ES256 for P-256, RS256 for RSA ≥ 2048 bits; everything else is refused with a clear reason. */
function algorithmOf(key: KeyObject, file: string, where: string, logger: Logger): SigningAlg {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  if (type === 'ec') {
    if (details.namedCurve === 'prime256v1') return 'ES256'
    throw keyError(
      where,
      `${file} is an EC key on ${details.namedCurve ?? 'an unknown curve'}; use P-256 (ES256)`,
    )
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0
    // RFC 7518 §3.3: RS256 keys must be at least 2048 bits.
    if (bits < MIN_RSA_BITS) {
      throw keyError(
        where,
        `${file}: RSA key size ${bits} bits is below the minimum of ${MIN_RSA_BITS} bits`,
      )
    }
    logger.warn(
      { file, bits },
      'signing key is RSA (RS256); an EC P-256 key (ES256) is recommended: ' +
        'smaller tokens, faster signing',
    )
    return 'RS256'
  }
  throw keyError(
    where,
    `${file} is a ${type ?? 'unknown'} key; use an EC P-256 (ES256) or RSA >= 2048 (RS256) key`,
  )
}

// Only the public members, picked by name, so a private member can never reach the JWKS.
function publicMembers(key: KeyObject): JWK {
  const jwk = key.export({ format: 'jwk' }) as JWK
  if (jwk.kty === 'EC') return { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
  return { kty: 'RSA', n: jwk.n, e: jwk.e }
}

async function toVerificationKey(publicKey: KeyObject, alg: SigningAlg): Promise<VerificationKey> {
  const members = publicMembers(publicKey)
  // RFC 7638: the kid is the thumbprint, so it is stable across restarts and reformatting.
  const kid = await calculateJwkThumbprint(members, 'sha256')
  return { kid, alg, publicKey, publicJwk: { ...members, kid, alg, use: 'sig' } }
}

async function loadFile(
  file: string,
  where: string,
  allowPublic: boolean,
  logger: Logger,
): Promise<{ parsed: ParsedKey; alg: SigningAlg }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw keyError(where, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const parsed = parseKeyText(text, file, where, allowPublic)
  return { parsed, alg: algorithmOf(parsed.publicKey, file, where, logger) }
}

/**
 * The generated key: read it when present, otherwise create it. Written to a temporary file and
 * hard-linked into place, so two processes starting together agree on one key and nobody reads a
 * half-written file.
 */
async function loadOrGenerate(dataDir: string, logger: Logger): Promise<SigningKey> {
  const file = join(dataDir, GENERATED_KEY_FILE)
  let text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  let generated = false
  if (text === undefined) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, `${JSON.stringify(privateKey.export({ format: 'jwk' }))}\n`, {
      mode: 0o600,
      flag: 'wx',
    })
    try {
      await link(tmp, file)
      generated = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      await unlink(tmp).catch(() => undefined)
    }
    text = await readFile(file, 'utf8')
  }
  const mode = (await stat(file)).mode & 0o777
  if (mode & 0o077) {
    logger.warn(
      { file, mode: mode.toString(8) },
      'generated signing key file is readable by others; chmod 600 it',
    )
  }
  const parsed = parseKeyText(text, file, `${CONFIG_PATH} (generated key)`, false)
  const alg = algorithmOf(parsed.publicKey, file, `${CONFIG_PATH} (generated key)`, logger)
  const key = {
    ...(await toVerificationKey(parsed.publicKey, alg)),
    privateKey: parsed.privateKey!,
  }
  logger.warn(
    { file, kid: key.kid },
    generated
      ? 'authServer.runConfig.signingKeys is not set: generated an ES256 signing key and stored ' +
          'it (mode 0600) under dataDir; tokens survive restarts only while that file is kept. ' +
          'Set signingKeys.current for production and rotation'
      : 'authServer.runConfig.signingKeys is not set: using the ES256 signing key generated ' +
          'earlier under dataDir. Set signingKeys.current for production and rotation',
  )
  return key
}

/**
 * Loads the signing keys of `authServer.runConfig`: `signingKeys.current` (private, PEM or JWK)
 * and `signingKeys.previous[]` (private or public; published and accepted, never used to sign).
 * EC P-256 → ES256; RSA ≥ 2048 → RS256 with a warning; anything else throws ConfigError. Without
 * `signingKeys`, an ES256 key is generated once under `dataDir` (0700 dir, 0600 file) and reused
 * on restart, with a warning. The caller must not log the returned private key.
 */
export async function loadSigningKeys(
  config: SigningKeysConfig,
  logger: Logger,
): Promise<SigningKeys> {
  let current: SigningKey
  const previous: VerificationKey[] = []
  if (config.signingKeys) {
    const where = `${CONFIG_PATH}.current`
    const { parsed, alg } = await loadFile(config.signingKeys.current, where, false, logger)
    current = {
      ...(await toVerificationKey(parsed.publicKey, alg)),
      privateKey: parsed.privateKey!,
    }
    for (const [i, file] of config.signingKeys.previous.entries()) {
      const old = await loadFile(file, `${CONFIG_PATH}.previous[${i}]`, true, logger)
      previous.push(await toVerificationKey(old.parsed.publicKey, old.alg))
    }
  } else {
    current = await loadOrGenerate(config.dataDir, logger)
  }

  const byKid = new Map<string, VerificationKey>()
  for (const key of [current, ...previous]) if (!byKid.has(key.kid)) byKid.set(key.kid, key)
  const published = [...byKid.values()].map((k) => ({ ...k.publicJwk }))

  const getKey: JWTVerifyGetKey = (header) => {
    const key = header.kid === undefined ? undefined : byKid.get(header.kid)
    // RFC 8725 §3.1: the algorithm is the key's, never the one the token asks for.
    if (!key || key.alg !== header.alg) throw new joseErrors.JWKSNoMatchingKey()
    return key.publicKey
  }

  logger.debug(
    { kid: current.kid, alg: current.alg, previous: previous.map((k) => k.kid) },
    'signing keys loaded',
  )
  return {
    current,
    previous,
    jwks: () => ({ keys: published.map((k) => ({ ...k })) }),
    getKey,
  }
}
