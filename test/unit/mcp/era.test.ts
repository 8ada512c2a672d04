import { describe, expect, it } from 'vitest'
import { createLogger } from '../../../src/log/index.js'
import { classifyEra, MODERN_PROTOCOL_VERSIONS } from '../../../src/mcp/index.js'
import {
  alignSessionProtocolVersion,
  negotiatedLegacyVersion,
} from '../../../src/mcp/modern/era.js'
import { checkParamHeaders, paramHeaders } from '../../../src/mcp/modern/tool-headers.js'

const URL_ = 'http://127.0.0.1/mcp'
const envelope = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
}
const post = (headers: Record<string, string> = {}) =>
  new Request(URL_, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } })
const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 't', version: '1' },
  },
}

describe('classifyEra', () => {
  it('sends initialize, session operations and claim-less requests to the 2025 path', async () => {
    expect(await classifyEra(post(), initialize)).toBe('legacy')
    expect(
      await classifyEra(post({ 'mcp-session-id': 's' }), {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/list',
      }),
    ).toBe('legacy')
    expect(await classifyEra(new Request(URL_, { method: 'GET' }), undefined)).toBe('legacy')
    expect(await classifyEra(new Request(URL_, { method: 'DELETE' }), undefined)).toBe('legacy')
  })

  it('sends a request that claims 2026-07-28 in its _meta to the modern path', async () => {
    const discover = {
      jsonrpc: '2.0',
      id: 1,
      method: 'server/discover',
      params: { _meta: envelope },
    }
    expect(await classifyEra(post({ 'mcp-protocol-version': '2026-07-28' }), discover)).toBe(
      'modern',
    )
    // A claim wins even on a request that also carries a session id: modern requests are sessionless.
    expect(await classifyEra(post({ 'mcp-session-id': 's' }), discover)).toBe('modern')
  })

  it('keeps a 2025 session request on its session whatever its protocol-version header says', async () => {
    const req = post({ 'mcp-session-id': 's', 'mcp-protocol-version': '2026-07-28' })
    expect(await classifyEra(req, { jsonrpc: '2.0', id: 3, method: 'tools/list' })).toBe('legacy')
    // Without a session, the same header with no envelope is the modern path's to reject (-32602).
    const bare = post({ 'mcp-protocol-version': '2026-07-28' })
    expect(await classifyEra(bare, { jsonrpc: '2.0', id: 3, method: 'tools/list' })).toBe('modern')
  })
})

describe('session protocol version', () => {
  it('negotiates what initialize asked for when supported, else the latest 2025 revision', () => {
    expect(negotiatedLegacyVersion(initialize)).toBe('2025-06-18')
    const unknown = {
      ...initialize,
      params: { ...initialize.params, protocolVersion: '2099-01-01' },
    }
    expect(negotiatedLegacyVersion(unknown)).toBe('2025-11-25')
  })

  it('rewrites only a 2026-07-28 header, to the session version', () => {
    const logger = createLogger({ level: 'silent' })
    const session = { logId: 'fp-s', protocolVersion: '2025-06-18', eraMismatchLogged: false }
    const modern = alignSessionProtocolVersion(
      post({ 'mcp-protocol-version': MODERN_PROTOCOL_VERSIONS[0] ?? '' }),
      session,
      logger,
    )
    expect(modern.headers.get('mcp-protocol-version')).toBe('2025-06-18')
    expect(session.eraMismatchLogged).toBe(true)
    const bogus = post({ 'mcp-protocol-version': '1999-01-01' })
    expect(alignSessionProtocolVersion(bogus, session, logger)).toBe(bogus)
  })
})

describe('Mcp-Param-* headers (SEP-2243)', () => {
  const tool = {
    name: 'weather',
    inputSchema: {
      type: 'object' as const,
      properties: {
        region: { type: 'string', 'x-mcp-header': 'Region' },
        days: { type: 'integer', 'x-mcp-header': 'Days' },
        where: { type: 'object', properties: { city: { type: 'string', 'x-mcp-header': 'City' } } },
        // Not reachable through `properties` only: no header.
        list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } },
      },
    },
  }
  const headers = (h: Record<string, string>) => new Headers(h)

  it('derives the headers from the body: plain when visible ASCII, else Base64', () => {
    expect(paramHeaders(tool, { region: 'eu', days: 3, where: { city: 'Zürich' }, list: ['a'] })).toEqual({
      'mcp-param-region': 'eu',
      'mcp-param-days': '3',
      'mcp-param-city': `=?base64?${Buffer.from('Zürich').toString('base64')}?=`,
    })
    // A value that looks like the Base64 form, or has surrounding blanks, is encoded too.
    const tricky = paramHeaders(tool, { region: '=?base64?ZXU=?=', days: 1 })
    expect(tricky['mcp-param-region']).toMatch(/^=\?base64\?[A-Za-z0-9+/=]+\?=$/)
    expect(paramHeaders(tool, { region: ' eu' })['mcp-param-region']).toBe('=?base64?IGV1?=')
  })

  it('accepts matching headers, numbers compared as numbers, and absent arguments', () => {
    expect(checkParamHeaders(tool, { region: 'eu', days: 3 }, headers({ 'mcp-param-region': 'eu', 'mcp-param-days': '3.0' }))).toBeUndefined()
    expect(checkParamHeaders(tool, {}, headers({ 'mcp-param-region': 'anything' }))).toBeUndefined()
    expect(checkParamHeaders(tool, { region: 'eu' }, headers({ 'mcp-param-region': '=?base64?ZXU=?=' }))).toBeUndefined()
  })

  it('refuses a missing, different, malformed or non-plain header', () => {
    const cases: Array<Record<string, string>> = [
      {},
      { 'mcp-param-region': 'us' },
      { 'mcp-param-region': '=?base64?ZXU?=' },
      { 'mcp-param-region': 'e\u00e9' },
    ]
    for (const h of cases)
      expect(checkParamHeaders(tool, { region: 'eu' }, headers(h))?.data.mismatch.header).toBe('Mcp-Param-Region')
  })
})
