import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { dcrKeyId, discoveryTarget, scopesHash } from '../../../src/dcr/index.js'

describe('cache key (issuer, redirect_uri, scopes_hash)', () => {
  it('scopes_hash is SHA-256 hex of the sorted, de-duplicated scopes joined with \\n', () => {
    const expected = createHash('sha256').update('mcp\nopenid').digest('hex')
    expect(scopesHash(['openid', 'mcp', 'openid'])).toBe(expected)
    expect(scopesHash(['mcp', 'openid'])).toBe(expected)
    expect(scopesHash([])).toBe(createHash('sha256').update('').digest('hex'))
  })

  it('the key id changes with each part and cannot be forged by moving separators', () => {
    const base = {
      issuer: 'https://a.example',
      redirectUri: 'https://v/oauth/callback',
      scopesHash: scopesHash(['mcp']),
    }
    const ids = new Set([
      dcrKeyId(base),
      dcrKeyId({ ...base, issuer: 'https://b.example' }),
      dcrKeyId({ ...base, redirectUri: 'https://w/oauth/callback' }),
      dcrKeyId({ ...base, scopesHash: scopesHash(['mcp', 'x']) }),
      dcrKeyId({ ...base, issuer: 'https://a.example|https://v', redirectUri: '/oauth/callback' }),
    ])
    expect(ids.size).toBe(5)
  })
})

describe('discoveryTarget: the issuer a discovery URL must describe (RFC 8414 §3.3)', () => {
  it.each([
    ['https://mcp.datadoghq.com', { issuer: 'https://mcp.datadoghq.com' }],
    ['https://mcp.datadoghq.com/', { issuer: 'https://mcp.datadoghq.com' }],
    ['https://as.example/v1/mcp', { issuer: 'https://as.example/v1/mcp' }],
    [
      'https://as.example/.well-known/oauth-authorization-server/v1/mcp',
      {
        issuer: 'https://as.example/v1/mcp',
        metadataUrl: 'https://as.example/.well-known/oauth-authorization-server/v1/mcp',
      },
    ],
    [
      'https://as.example/.well-known/oauth-authorization-server',
      {
        issuer: 'https://as.example',
        metadataUrl: 'https://as.example/.well-known/oauth-authorization-server',
      },
    ],
    [
      'https://as.example/tenant/.well-known/openid-configuration',
      {
        issuer: 'https://as.example/tenant',
        metadataUrl: 'https://as.example/tenant/.well-known/openid-configuration',
      },
    ],
  ])('%s', (url, expected) => {
    expect(discoveryTarget(url)).toEqual(expected)
  })
})
