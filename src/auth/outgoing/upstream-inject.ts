import type { OutgoingStrategyConfig } from '../../config/index.js'
import { Secret } from '../../log/index.js'
import type { Identity } from '../incoming/index.js'
import { OutgoingAuthError, type OutgoingAuthStrategy } from './types.js'

/** The `upstreamInject` block of an `upstream_inject` strategy in the YAML. */
export type UpstreamInjectConfig = Extract<
  OutgoingStrategyConfig,
  { type: 'upstream_inject' }
>['upstreamInject']

export interface UpstreamInjectOptions {
  /** Backend name, for error messages. */
  backend: string
}

/**
 * Mode B: sends the access token the caller obtained from an upstream provider when signing in
 * through the embedded authorization server (`identity.upstreamTokens[providerName]`).
 */
export function createUpstreamInjectStrategy(
  config: UpstreamInjectConfig,
  options: UpstreamInjectOptions,
): OutgoingAuthStrategy {
  const { providerName } = config
  /** The header for the caller's upstream token, or why there is none. */
  const build = (identity: Identity | undefined): Record<string, string> | OutgoingAuthError => {
    const tokens = identity?.upstreamTokens
    // Object.hasOwn: a provider named `constructor` or `__proto__` must not reach the prototype.
    const token = tokens && Object.hasOwn(tokens, providerName) ? tokens[providerName] : undefined
    if (!(token instanceof Secret) || token.reveal() === '') {
      return new OutgoingAuthError(
        `backend ${options.backend}: no upstream token for provider ${providerName}; sign in again`,
      )
    }
    // MCP authorization spec (token passthrough is forbidden): never the caller's own token.
    if (token.reveal() === identity?.token?.reveal()) {
      return new OutgoingAuthError(
        `backend ${options.backend}: upstream token for provider ${providerName} is the caller's own token; refusing to forward it`,
      )
    }
    // RFC 6750 §2.1
    return { Authorization: `Bearer ${token.reveal()}` }
  }
  // Per verified identity: incoming auth makes a new Identity whenever the upstream tokens change
  // (refresh, revoke, sign-in again), so an entry never outlives the tokens it was built from.
  const built = new WeakMap<Identity, Readonly<Record<string, string>>>()
  return {
    type: 'upstream_inject',
    identityScoped: true,
    headers: async (identity: Identity | undefined) => {
      const headers = build(identity)
      if (headers instanceof OutgoingAuthError) throw headers
      return headers
    },
    headersNow: (identity) => {
      if (!identity) return undefined
      let headers = built.get(identity)
      if (!headers) {
        const made = build(identity)
        if (made instanceof OutgoingAuthError) return undefined
        headers = Object.freeze(made)
        built.set(identity, headers)
      }
      return headers
    },
  }
}
