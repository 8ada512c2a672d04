import { describe, expect, it } from 'vitest'
import {
  buildAuthorizationServerMetadata,
  createMetadataApp,
} from '../../../../src/authserver/metadata.js'
import { createHarness, testConfig } from './helpers.js'

describe('authorization server metadata (RFC 8414)', () => {
  it('RFC 8414 §2: advertises exactly what the server does', () => {
    const doc = buildAuthorizationServerMetadata(testConfig())
    expect(doc).toEqual({
      issuer: 'https://vmcp.example',
      authorization_endpoint: 'https://vmcp.example/oauth/authorize',
      token_endpoint: 'https://vmcp.example/oauth/token',
      registration_endpoint: 'https://vmcp.example/oauth/register',
      jwks_uri: 'https://vmcp.example/.well-known/jwks.json',
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
      revocation_endpoint: 'https://vmcp.example/oauth/revoke',
      revocation_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: false,
    })
    expect(
      buildAuthorizationServerMetadata(testConfig({ cimd: { enabled: true, allowedHosts: [] } })),
    ).toMatchObject({
      client_id_metadata_document_supported: true,
    })
  })

  it('serves both documents, the JWKS (cached 5 min), CORS * on GET and OPTIONS', async () => {
    const h = await createHarness()
    const app = createMetadataApp({ config: h.config, keys: h.keys })
    const oauth = await app.request('/.well-known/oauth-authorization-server')
    expect(oauth.status).toBe(200)
    expect(oauth.headers.get('access-control-allow-origin')).toBe('*')
    expect(((await oauth.json()) as { issuer: string }).issuer).toBe('https://vmcp.example')

    const oidc = (await (await app.request('/.well-known/openid-configuration')).json()) as Record<
      string,
      unknown
    >
    expect(oidc).toMatchObject({
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
    })
    expect(oidc).not.toHaveProperty('userinfo_endpoint')

    const jwks = await app.request('/.well-known/jwks.json')
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=300')
    expect(jwks.headers.get('access-control-allow-origin')).toBe('*')
    expect(await jwks.json()).toEqual(h.keys.jwks())

    const pre = await app.request('/.well-known/oauth-authorization-server', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://x.example',
        'access-control-request-headers': 'mcp-protocol-version',
      },
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET, OPTIONS')
    expect(pre.headers.get('access-control-allow-headers')).toContain('MCP-Protocol-Version')
  })

  it('RFC 8414 §3.1: path-inserted well-known URLs when the issuer has a path', async () => {
    const h = await createHarness({ config: { issuer: 'https://vmcp.example/tenant' } })
    const app = createMetadataApp({ config: h.config, keys: h.keys })
    for (const path of [
      '/.well-known/oauth-authorization-server/tenant',
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration/tenant',
      '/tenant/.well-known/openid-configuration',
    ]) {
      const res = await app.request(path)
      expect(res.status, path).toBe(200)
      const doc = (await res.json()) as Record<string, string>
      // RFC 8414 §3.3: the issuer in the document is the one the URL was derived from.
      expect(doc.issuer).toBe('https://vmcp.example/tenant')
      expect(doc.token_endpoint).toBe('https://vmcp.example/tenant/oauth/token')
    }
    expect((await app.request('/tenant/.well-known/jwks.json')).status).toBe(200)
  })
})
