import { describe, expect, it } from 'vitest'
import {
  buildBearerChallenge,
  buildBearerErrorResponse,
  buildProtectedResourceMetadata,
  extractBearerToken,
  findMissingScopes,
  readTokenScopes,
} from '../../../src/auth/incoming/index.js'

const PRM = 'https://vmcp.example/.well-known/oauth-protected-resource'

describe('buildBearerChallenge', () => {
  it('RFC 6750 §3.1: no error attribute when the request had no credentials', () => {
    expect(buildBearerChallenge({ resourceMetadataUrl: PRM })).toBe(
      `Bearer resource_metadata="${PRM}"`,
    )
    expect(buildBearerChallenge({ resourceMetadataUrl: PRM, scopes: ['a', 'b'] })).toBe(
      `Bearer resource_metadata="${PRM}", scope="a b"`,
    )
  })

  it('orders resource_metadata, scope, error, error_description', () => {
    expect(
      buildBearerChallenge({
        resourceMetadataUrl: PRM,
        scopes: ['mcp:tools'],
        error: 'invalid_token',
        errorDescription: 'token expired',
      }),
    ).toBe(
      `Bearer resource_metadata="${PRM}", scope="mcp:tools", error="invalid_token", ` +
        'error_description="token expired"',
    )
  })

  it('RFC 9110 §5.6.4: escapes quotes and backslashes, drops control characters', () => {
    const value = buildBearerChallenge({
      resourceMetadataUrl: PRM,
      error: 'invalid_token',
      errorDescription: 'say "hi" \\ then\r\nSet-Cookie: x=1',
    })
    expect(value).toBe(
      `Bearer resource_metadata="${PRM}", error="invalid_token", ` +
        'error_description="say \\"hi\\" \\\\ thenSet-Cookie: x=1"',
    )
    // Usable as a header value (would throw on CR/LF).
    expect(new Headers({ 'www-authenticate': value }).get('www-authenticate')).toBe(value)
  })
})

describe('buildBearerErrorResponse', () => {
  it('401 without error code in the header, JSON body, no-store', async () => {
    const res = buildBearerErrorResponse({ resourceMetadataUrl: PRM })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${PRM}"`)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.json()).toEqual({
      error: 'invalid_request',
      error_description: 'missing bearer token',
    })
  })

  it('RFC 6750 §3.1: insufficient_scope is a 403', async () => {
    const res = buildBearerErrorResponse({
      resourceMetadataUrl: PRM,
      scopes: ['mcp:admin'],
      error: 'insufficient_scope',
    })
    expect(res.status).toBe(403)
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${PRM}", scope="mcp:admin", error="insufficient_scope", ` +
        'error_description="insufficient scope"',
    )
    expect(await res.json()).toEqual({
      error: 'insufficient_scope',
      error_description: 'insufficient scope',
    })
  })

  it('invalid_token and invalid_request are 401s', () => {
    for (const error of ['invalid_token', 'invalid_request'] as const) {
      expect(buildBearerErrorResponse({ resourceMetadataUrl: PRM, error }).status).toBe(401)
    }
  })
})

describe('extractBearerToken', () => {
  const extract = (authorization?: string) =>
    extractBearerToken(new Headers(authorization === undefined ? {} : { authorization }))

  it('RFC 6750 §2.1: reads the b64token after the Bearer scheme', () => {
    expect(extract('Bearer abc.DEF-_~+/==')).toEqual({ kind: 'token', token: 'abc.DEF-_~+/==' })
    expect(extract('BEARER   abc')).toEqual({ kind: 'token', token: 'abc' })
  })

  it('RFC 6750 §3.1: absent header or another scheme is missing, not malformed', () => {
    expect(extract()).toEqual({ kind: 'missing' })
    expect(extract('Basic dXNlcjpwYXNz')).toEqual({ kind: 'missing' })
    expect(extract('DPoP abc')).toEqual({ kind: 'missing' })
  })

  it('RFC 6750 §2.1: an empty, spaced or doubled Bearer value is malformed', () => {
    expect(extract('Bearer')).toEqual({ kind: 'malformed' })
    expect(extract('Bearer a b')).toEqual({ kind: 'malformed' })
    expect(extract('Bearer a=b')).toEqual({ kind: 'malformed' })
    const doubled = new Headers()
    doubled.append('authorization', 'Bearer a')
    doubled.append('authorization', 'Bearer b')
    expect(extractBearerToken(doubled)).toEqual({ kind: 'malformed' })
  })
})

describe('scopes', () => {
  it('reads scope strings and scp arrays or strings', () => {
    expect([...readTokenScopes({ scope: 'a b', scp: ['c'] })].sort()).toEqual(['a', 'b', 'c'])
    expect([...readTokenScopes({ scp: 'x  y' })].sort()).toEqual(['x', 'y'])
    expect(readTokenScopes({ scope: 42 }).size).toBe(0)
    expect(findMissingScopes(['a', 'z'], new Set(['a']))).toEqual(['z'])
  })
})

describe('buildProtectedResourceMetadata', () => {
  it('RFC 9728 §2: omits scopes_supported when empty', () => {
    expect(
      buildProtectedResourceMetadata({
        resource: 'https://vmcp.example/mcp',
        authorizationServers: ['https://idp.example'],
      }),
    ).toEqual({
      resource: 'https://vmcp.example/mcp',
      authorization_servers: ['https://idp.example'],
      bearer_methods_supported: ['header'],
    })
  })
})
