/** Inputs of an RFC 9728 protected-resource metadata document. */
export interface ProtectedResourceMetadataOptions {
  /** RFC 9728 §2 `resource`: the identifier clients send as RFC 8707 `resource`. */
  resource: string
  /** Issuers whose tokens this resource accepts. */
  authorizationServers: readonly string[]
  /** Advertised scopes; `scopes_supported` is omitted when empty. */
  scopes?: readonly string[]
}

/** RFC 9728 §2 document served under `/.well-known/oauth-protected-resource` (§3). */
export function buildProtectedResourceMetadata(
  options: ProtectedResourceMetadataOptions,
): Record<string, unknown> {
  const scopes = options.scopes ?? []
  return {
    resource: options.resource,
    authorization_servers: [...options.authorizationServers],
    ...(scopes.length > 0 ? { scopes_supported: [...scopes] } : {}),
    // Only the header method is accepted (RFC 6750 §2.1); see extractBearerToken.
    bearer_methods_supported: ['header'],
  }
}
