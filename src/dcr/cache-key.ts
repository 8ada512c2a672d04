import { createHash } from 'node:crypto'
import type { DcrKey } from './types.js'

/** SHA-256 hex of the sorted, de-duplicated scopes joined with `\n` (no scopes: hash of ''). */
export function scopesHash(scopes: readonly string[]): string {
  const joined = [...new Set(scopes)].sort().join('\n')
  return createHash('sha256').update(joined).digest('hex')
}

/** A stable id for a key (file entries, Redis keys): SHA-256 over its length-prefixed parts. */
export function dcrKeyId(key: DcrKey): string {
  const parts = [key.issuer, key.redirectUri, key.scopesHash].map((p) => `${p.length}:${p}`)
  return createHash('sha256').update(parts.join('|')).digest('hex')
}

const AS_WELL_KNOWN = '/.well-known/oauth-authorization-server'
const OIDC_WELL_KNOWN = '/.well-known/openid-configuration'

/** Where a discovery URL points: the issuer it must describe, and the exact document, if named. */
export interface DiscoveryTarget {
  issuer: string
  /** Set when the configured URL is itself a metadata document URL. */
  metadataUrl?: string
}

/**
 * The issuer a configured `discoveryUrl` expects (RFC 8414 §3.3): an issuer URL is taken as is;
 * a metadata URL gives the issuer by removing the well-known segment, either inserted after the
 * host (RFC 8414 §3.1: `/.well-known/oauth-authorization-server/tenant`) or appended
 * (`/tenant/.well-known/openid-configuration`).
 */
export function discoveryTarget(discoveryUrl: string): DiscoveryTarget {
  const url = new URL(discoveryUrl)
  const path = url.pathname.replace(/\/$/, '')
  const issuerWith = (p: string) => `${url.origin}${p}`
  if (path.startsWith(`${AS_WELL_KNOWN}/`) || path === AS_WELL_KNOWN) {
    return { issuer: issuerWith(path.slice(AS_WELL_KNOWN.length)), metadataUrl: url.href }
  }
  for (const suffix of [AS_WELL_KNOWN, OIDC_WELL_KNOWN]) {
    if (path.endsWith(suffix)) {
      return { issuer: issuerWith(path.slice(0, -suffix.length)), metadataUrl: url.href }
    }
  }
  return { issuer: issuerWith(path) }
}
