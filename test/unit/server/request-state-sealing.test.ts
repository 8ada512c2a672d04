import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { parseConfigText } from '../../../src/config/index.js'
import { createLogger } from '../../../src/log/index.js'
import { deriveRequestStateKey } from '../../../src/mcp/index.js'
import { requestStateSealing } from '../../../src/server/request-state-sealing.js'
import { modeBConfig } from '../../support/mode-b.js'

const ENC_KEY = '7f'.repeat(32)
const STATE_KEY = 'replica-shared-request-state-key-0123456789'
const logger = createLogger({ level: 'silent' })

const modeB = (server: Record<string, unknown> = {}) =>
  modeBConfig({
    port: 4483,
    backends: [],
    outgoing: {},
    server,
    upstreams: [
      {
        name: 'corp',
        type: 'oidc',
        oidc: { issuerUrl: 'https://idp.example', clientId: 'c', clientSecret: { env: 'CS' } },
      },
    ],
    runConfig: { storage: { type: 'memory', encryptionKey: { env: 'ENC_KEY' } } },
  })
const parse = (config: Record<string, unknown>) =>
  parseConfigText(stringify(config), {
    baseDir: process.cwd(),
    env: { CS: 'secret', ENC_KEY, RSK: STATE_KEY },
  })

describe('which key seals requestState (replicas must share it)', () => {
  it('server.requestStateKey first: the key derived from it, for the publicUrl /mcp audience', () => {
    const sealing = requestStateSealing(
      parse(modeB({ publicUrl: 'https://vmcp.example', requestStateKey: { env: 'RSK' } })),
      logger,
    )
    expect(sealing.audience).toBe('https://vmcp.example/mcp')
    expect(sealing.key).toEqual(deriveRequestStateKey(new TextEncoder().encode(STATE_KEY)))
  })

  it("Mode B without it: derived from storage.encryptionKey (never that key itself)", () => {
    const sealing = requestStateSealing(parse(modeB()), logger)
    const material = Buffer.from(ENC_KEY, 'hex')
    expect(sealing.key).toEqual(deriveRequestStateKey(material))
    expect(Buffer.from(sealing.key ?? [])).not.toEqual(material)
  })

  it('neither: no key (a random one per process), the name as audience', () => {
    const sealing = requestStateSealing(parse({ name: 'edge' }), logger)
    expect(sealing).toEqual({ audience: 'urn:vmcp:edge' })
  })
})
