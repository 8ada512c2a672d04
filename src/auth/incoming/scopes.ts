/**
 * The scopes granted to a token. RFC 9068 §2.2.3 and RFC 7662 §2.2 use `scope`, a space-separated
 * string; Okta puts an array in `scp` and Entra a space-separated string, so both forms of both
 * claims are read.
 */
export function readTokenScopes(claims: Readonly<Record<string, unknown>>): Set<string> {
  const granted = new Set<string>()
  for (const claim of [claims.scope, claims.scp]) {
    const items = typeof claim === 'string' ? claim.split(' ') : Array.isArray(claim) ? claim : []
    for (const item of items) if (typeof item === 'string' && item !== '') granted.add(item)
  }
  return granted
}

/** The required scopes that `granted` lacks, in the order they were required. */
export function findMissingScopes(required: readonly string[], granted: Set<string>): string[] {
  return required.filter((scope) => !granted.has(scope))
}
