import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JWK,
} from 'jose'
import { describe, expect, it } from 'vitest'
import { issueAccessToken } from '../../../../src/authserver/jwt.js'
import { GENERATED_KEY_FILE, loadSigningKeys } from '../../../../src/authserver/keys.js'
import { ConfigError } from '../../../../src/config/index.js'
import { logSink, tempDir } from './helpers.js'

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']

async function writeKey(dir: string, name: string, text: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, text, { mode: 0o600 })
  return file
}

const ecPem = () =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'pem',
    type: 'pkcs8',
  }) as string

describe('signing keys', () => {
  it('generates an ES256 key under dataDir (0700 dir, 0600 file), warns, and reuses it on restart', async () => {
    const dir = join(await tempDir(), 'data')
    const first = logSink()
    const keys = await loadSigningKeys({ signingKeys: undefined, dataDir: dir }, first.logger)
    expect(keys.current.alg).toBe('ES256')
    const file = join(dir, GENERATED_KEY_FILE)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect(
      first
        .records()
        .some((r) => r.level === 40 && String(r.msg).includes('generated an ES256 signing key')),
    ).toBe(true)
    // The key file is a private JWK; the log never carries its private member.
    const stored = JSON.parse(await readFile(file, 'utf8')) as JWK
    expect(typeof stored.d).toBe('string')
    expect(first.lines.join('\n')).not.toContain(stored.d)

    const second = logSink()
    const again = await loadSigningKeys({ signingKeys: undefined, dataDir: dir }, second.logger)
    expect(again.current.kid).toBe(keys.current.kid)
    expect(
      second.records().some((r) => r.level === 40 && String(r.msg).includes('generated earlier')),
    ).toBe(true)
  })

  it('RFC 7638: kid is the SHA-256 JWK thumbprint of the public key', async () => {
    const dir = await tempDir()
    const file = await writeKey(dir, 'current.pem', ecPem())
    const keys = await loadSigningKeys(
      { signingKeys: { current: file, previous: [] }, dataDir: dir },
      logSink().logger,
    )
    const { kty, crv, x, y } = keys.current.publicJwk
    expect(keys.current.kid).toBe(await calculateJwkThumbprint({ kty, crv, x, y } as JWK, 'sha256'))
  })

  it('reads PEM and JWK files; RSA 2048 is accepted as RS256 with a warning recommending EC', async () => {
    const dir = await tempDir()
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    const file = await writeKey(dir, 'rsa.jwk', JSON.stringify(rsa.export({ format: 'jwk' })))
    const sink = logSink()
    const keys = await loadSigningKeys(
      { signingKeys: { current: file, previous: [] }, dataDir: dir },
      sink.logger,
    )
    expect(keys.current.alg).toBe('RS256')
    expect(
      sink
        .records()
        .some(
          (r) => r.level === 40 && String(r.msg).includes('EC P-256 key (ES256) is recommended'),
        ),
    ).toBe(true)
  })

  it('RFC 7518 §3.3: RSA 1024 is rejected', async () => {
    const dir = await tempDir()
    const pem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    })
    const file = await writeKey(dir, 'rsa1024.pem', pem as string)
    const load = loadSigningKeys(
      { signingKeys: { current: file, previous: [] }, dataDir: dir },
      logSink().logger,
    )
    await expect(load).rejects.toBeInstanceOf(ConfigError)
    await expect(load).rejects.toThrow(/RSA key size 1024 bits is below the minimum of 2048 bits/)
  })

  it('rejects symmetric keys, other curves, Ed25519, public-only current keys and missing files', async () => {
    const dir = await tempDir()
    const cases: Array<[string, string, RegExp]> = [
      [
        'oct.jwk',
        JSON.stringify({ kty: 'oct', k: randomBytes(32).toString('base64url') }),
        /symmetric/,
      ],
      [
        'p384.pem',
        generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
          format: 'pem',
          type: 'pkcs8',
        }) as string,
        /secp384r1; use P-256/,
      ],
      [
        'ed.pem',
        generateKeyPairSync('ed25519').privateKey.export({
          format: 'pem',
          type: 'pkcs8',
        }) as string,
        /ed25519 key/,
      ],
      [
        'public.pem',
        generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
          format: 'pem',
          type: 'spki',
        }) as string,
        /holds no private key/,
      ],
    ]
    for (const [name, text, message] of cases) {
      const file = await writeKey(dir, name, text)
      await expect(
        loadSigningKeys(
          { signingKeys: { current: file, previous: [] }, dataDir: dir },
          logSink().logger,
        ),
      ).rejects.toThrow(message)
    }
    await expect(
      loadSigningKeys(
        { signingKeys: { current: join(dir, 'missing.pem'), previous: [] }, dataDir: dir },
        logSink().logger,
      ),
    ).rejects.toThrow(/cannot read .*missing\.pem \(ENOENT\)/)
  })

  it('JWKS publishes current and previous public keys and no private member', async () => {
    const dir = await tempDir()
    const current = await writeKey(dir, 'current.pem', ecPem())
    const old = await writeKey(dir, 'old.pem', ecPem())
    const oldPublic = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey
    const older = await writeKey(
      dir,
      'older.jwk',
      JSON.stringify(oldPublic.export({ format: 'jwk' })),
    )
    const keys = await loadSigningKeys(
      { signingKeys: { current, previous: [old, older] }, dataDir: dir },
      logSink().logger,
    )
    const jwks = keys.jwks()
    expect(jwks.keys.map((k) => k.kid)).toEqual([
      keys.current.kid,
      ...keys.previous.map((k) => k.kid),
    ])
    expect(jwks.keys).toHaveLength(3)
    for (const key of jwks.keys) {
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member)
      expect(key).toMatchObject({ use: 'sig', alg: 'ES256', kty: 'EC', crv: 'P-256' })
    }
  })
})

describe('access tokens', () => {
  it('RFC 9068 §2: at+jwt with iss, sub, aud, exp, iat, nbf, jti, client_id, scope, tsid, name, email; verifies against the JWKS', async () => {
    const keys = await loadSigningKeys(
      { signingKeys: undefined, dataDir: await tempDir() },
      logSink().logger,
    )
    const issued = await issueAccessToken({
      keys,
      issuer: 'https://vmcp.example',
      subject: 'user-1',
      audience: 'https://vmcp.example/mcp',
      clientId: 'client-1',
      scope: 'openid profile',
      tsid: 'tsid-1',
      name: 'Ada',
      email: 'ada@example.com',
      ttlMs: 3600_000,
    })
    const header = decodeProtectedHeader(issued.token)
    expect(header).toEqual({ alg: 'ES256', kid: keys.current.kid, typ: 'at+jwt' })
    const { payload } = await jwtVerify(issued.token, createLocalJWKSet(keys.jwks()), {
      issuer: 'https://vmcp.example',
      audience: 'https://vmcp.example/mcp',
      typ: 'at+jwt',
    })
    expect(payload).toMatchObject({
      sub: 'user-1',
      client_id: 'client-1',
      scope: 'openid profile',
      tsid: 'tsid-1',
      name: 'Ada',
      email: 'ada@example.com',
    })
    expect(payload.exp! - payload.iat!).toBe(3600)
    expect(payload.nbf).toBe(payload.iat)
    // 128 random bits, base64url.
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(issued.expiresIn).toBe(3600)

    // In-process lookup (getKey) accepts it too, and refuses an unknown kid.
    await expect(jwtVerify(issued.token, keys.getKey)).resolves.toBeTruthy()
    const other = await loadSigningKeys(
      { signingKeys: undefined, dataDir: await tempDir() },
      logSink().logger,
    )
    await expect(jwtVerify(issued.token, other.getKey)).rejects.toThrow(/no applicable key/)
  })

  it('omits name and email when not given; previous keys still verify', async () => {
    const dir = await tempDir()
    const oldFile = await writeKey(dir, 'old.pem', ecPem())
    const oldKeys = await loadSigningKeys(
      { signingKeys: { current: oldFile, previous: [] }, dataDir: dir },
      logSink().logger,
    )
    const issued = await issueAccessToken({
      keys: oldKeys,
      issuer: 'https://vmcp.example',
      subject: 's',
      audience: 'https://vmcp.example/mcp',
      clientId: 'c',
      scope: '',
      tsid: 't',
      ttlMs: 60_000,
    })
    const newFile = await writeKey(dir, 'new.pem', ecPem())
    const rotated = await loadSigningKeys(
      { signingKeys: { current: newFile, previous: [oldFile] }, dataDir: dir },
      logSink().logger,
    )
    const { payload } = await jwtVerify(issued.token, createLocalJWKSet(rotated.jwks()))
    expect(payload).not.toHaveProperty('name')
    expect(payload).not.toHaveProperty('email')
  })
})
