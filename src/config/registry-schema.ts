import { z } from 'zod'
import type { Primitives } from './schema.js'

/**
 * `registries[]`: private MCP registries (MCP Registry API v0.1) whose servers become backends.
 * Sign-in is always a public client with PKCE S256 (OAuth 2.1 §2.1, RFC 7636): there is no
 * client secret field and no way to turn PKCE off.
 */
export function createRegistrySchema(p: Primitives) {
  const { secureUrl, name, duration } = p
  const auth = z.discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('oauth'),
      // RFC 8414 §3.3: the discovered issuer must equal this value exactly.
      issuer: secureUrl.describe('OIDC / RFC 8414 issuer; discovery checks it exactly'),
      clientId: z.string().min(1).describe('a public client registered at the IdP (no secret, ever)'),
      scopes: z.array(z.string().min(1)).default([]).describe('offline_access is added'),
      audience: z.string().min(1).optional().describe('sent as `audience` for IdPs that need it'),
    }),
  ])
  return z.strictObject({
    name,
    url: secureUrl
      .refine((s) => !/[?#]/.test(s), 'must not have a query or fragment')
      .describe('base URL; vmcp lists {url}/v0.1/servers'),
    auth: auth.optional().describe('absent: the registry is read without a token'),
    include: z
      .array(z.string().min(1))
      .default([])
      .describe('server-name globs (* matches within a segment, ** across); empty: every server'),
    refreshInterval: duration('5m').refine((ms) => ms >= 10_000, 'must be at least 10s'),
  })
}
