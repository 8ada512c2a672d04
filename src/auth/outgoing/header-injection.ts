import type { OutgoingStrategyConfig } from '../../config/index.js'
import type { OutgoingAuthStrategy } from './types.js'

/**
 * The `headerInjection` block of a `header_injection` strategy, as the schema outputs it: the
 * YAML's single `headerName`/`value` and its `headers` map both arrive as `headers`.
 */
export type HeaderInjectionConfig = Extract<
  OutgoingStrategyConfig,
  { type: 'header_injection' }
>['headerInjection']

/**
 * Sends operator-configured headers (typically static API keys, e.g. Datadog's API and application
 * keys) on every request, whoever the caller is: the same backend connection can serve every
 * identity.
 */
export function createHeaderInjectionStrategy(config: HeaderInjectionConfig): OutgoingAuthStrategy {
  const entries = Object.entries(config.headers)
  const reveal = () => {
    const out: Record<string, string> = {}
    for (const [name, value] of entries) out[name] = value.reveal()
    return out
  }
  // The configured values never change for this strategy (a reload makes a new one).
  const fixed = Object.freeze(reveal())
  return {
    type: 'header_injection',
    identityScoped: false,
    // A fresh object per call: callers may merge into it.
    headers: async () => reveal(),
    headersNow: () => fixed,
  }
}
