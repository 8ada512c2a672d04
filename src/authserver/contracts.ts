import type { Secret } from '../log/index.js'

/** A registered OAuth client (RFC 7591 metadata, camelCase in the domain). */
export interface OAuthClient {
  clientId: string
  /** SHA-256 (hex) of the secret for confidential clients; never the secret itself. */
  clientSecretHash?: string
  tokenEndpointAuthMethod: 'none' | 'client_secret_basic' | 'client_secret_post'
  redirectUris: string[]
  grantTypes: string[]
  responseTypes: string[]
  clientName?: string
  scope?: string
  /** True when the client id is a Client ID Metadata Document URL. */
  cimd?: boolean
  createdAt: number
}

/** Looks up clients: registered ones from storage, CIMD URLs by fetching their document. */
export interface ClientRegistry {
  /** undefined when unknown (or, for CIMD, when the document is unreachable or invalid). */
  getClient(clientId: string): Promise<OAuthClient | undefined>
}

/** What an authorization code stands for; stored under SHA-256 of the code, single use. */
export interface CodeGrant {
  clientId: string
  redirectUri: string
  /** PKCE S256 challenge (RFC 7636 §4.2). */
  codeChallenge: string
  scope: string
  /** RFC 8707 resource: becomes the access token's `aud`. */
  resource: string
  subject: string
  /** The upstream session whose tokens back this grant. */
  tsid: string
  name?: string
  email?: string
  /** The client's OIDC nonce from the authorization request, for the ID token. */
  nonce?: string
  /** Epoch ms; also the ID token's `auth_time` (the upstream sign-in just completed). */
  issuedAt: number
}

/** Issues vmcp's authorization codes (A2 calls this at the end of the upstream chain). */
export interface CodeIssuer {
  /** Stores the grant and returns the one-time code to hand to the client. */
  issueCode(grant: Omit<CodeGrant, 'issuedAt'>): Promise<string>
}

/** Upstream tokens of one user session, loaded for outgoing `upstream_inject`. */
export interface UpstreamTokenSource {
  /**
   * Access tokens per upstream name for `tsid`, refreshing expired ones (one refresh at a time
   * per token). Throws UpstreamRefreshError naming the upstream when a refresh fails, and
   * StorageUnavailableError when storage is down.
   */
  tokensFor(tsid: string, signal?: AbortSignal): Promise<Record<string, Secret>>
  /**
   * Ends the upstream session `tsid` (grant revoked, chain failed): first a revoked marker, which
   * a refresh in flight checks after writing its row back (so a revocation always wins over it),
   * then every stored upstream token is deleted, the `onRevoke` listeners are told, and the
   * tokens are revoked at each upstream that advertises an RFC 7009 endpoint (best effort).
   */
  revoke(tsid: string): Promise<void>
  /** True once `tsid` was revoked (on any replica sharing the store). */
  isRevoked(tsid: string): Promise<boolean>
  /**
   * Calls `listener(tsid)` after each revocation made by this process, once the rows are gone:
   * the hook for dropping a per-session cache of upstream tokens. Returns the unsubscribe
   * function. Other replicas are not told; a cache must expire on its own or ask `isRevoked`.
   */
  onRevoke(listener: (tsid: string) => void): () => void
  /**
   * Calls `listener(tsid)` whenever this process replaces the stored tokens of `tsid` (refresh,
   * a new sign-in, extend): a per-session cache drops its copy. Optional for other sources.
   */
  onTokensChanged?(listener: (tsid: string) => void): void
}

export class UpstreamRefreshError extends Error {
  constructor(
    readonly upstream: string,
    options?: { cause?: unknown },
  ) {
    super(`upstream ${upstream} token could not be refreshed; sign in again`, options)
    this.name = 'UpstreamRefreshError'
  }
}
