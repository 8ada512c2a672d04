/** The cache key of one registration: which server, for which callback, for which scopes. */
export interface DcrKey {
  /** The upstream authorization server's issuer (or its registration endpoint when not discovered). */
  issuer: string
  /** vmcp's `/oauth/callback` under its own issuer. */
  redirectUri: string
  /** SHA-256 hex of the sorted, de-duplicated scopes joined with `\n`. */
  scopesHash: string
}

/** Authorization server metadata kept with a registration, so a cache hit needs no discovery. */
export interface DcrServerMetadata {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  registration_endpoint?: string
  revocation_endpoint?: string
  userinfo_endpoint?: string
  jwks_uri?: string
  /** RFC 9207: when true, `iss` must come back on the authorization response. */
  authorization_response_iss_parameter_supported?: boolean
  /** false when the endpoints were configured rather than discovered (no issuer to compare). */
  discovered: boolean
}

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none'

/**
 * One registration as RFC 7591 §3.2.1 / RFC 7592 §3 returned it, plus what vmcp needs to use and
 * renew it. `clientSecret` and `registrationAccessToken` are secrets: stores seal them at rest and
 * nothing logs them.
 */
export interface DcrCredentials {
  key: DcrKey
  /** The upstream's name in the config (informational: `vmcp dcr list`). */
  upstream: string
  clientId: string
  clientSecret?: string
  /** Epoch seconds. */
  clientIdIssuedAt?: number
  /** Epoch seconds; 0 or absent: the secret never expires (RFC 7591 §3.2.1). */
  clientSecretExpiresAt?: number
  registrationAccessToken?: string
  registrationClientUri?: string
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  server: DcrServerMetadata
  /** The metadata we registered (sent back unchanged on an RFC 7592 update). */
  registered: {
    redirect_uris: string[]
    grant_types: string[]
    response_types: string[]
    client_name?: string
    scope?: string
    software_id?: string
  }
  /** Epoch ms when vmcp registered (renewals keep it). */
  createdAt: number
  /** Epoch ms of the last RFC 7592 renewal. */
  renewedAt?: number
}

/**
 * The narrow store of registrations, apart from the general Store: get, put, delete, list, and a
 * lock so replicas renew one expiry once.
 */
export interface DcrCredentialStore {
  readonly type: 'memory' | 'file' | 'redis'
  get(key: DcrKey): Promise<DcrCredentials | undefined>
  /** Overwrites the registration under `credentials.key`. */
  put(credentials: DcrCredentials): Promise<void>
  delete(key: DcrKey): Promise<void>
  list(): Promise<DcrCredentials[]>
  /**
   * Takes the renewal lock for `key` for at most `ttlMs`; resolves with its release, or undefined
   * when another holder has it. Memory and file stores lock within the process only.
   */
  lock(key: DcrKey, ttlMs: number): Promise<(() => Promise<void>) | undefined>
  close(): Promise<void>
}
