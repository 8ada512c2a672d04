import type { OutgoingStrategyConfig } from '../../config/index.js'
import type { OutgoingAuthStrategy } from './types.js'

/** The `headerInjection` block of a `header_injection` strategy in the YAML. */
export type HeaderInjectionConfig = Extract<
  OutgoingStrategyConfig,
  { type: 'header_injection' }
>['headerInjection']

/**
 * Sends one operator-configured header (typically a static API key) on every request, whoever the
 * caller is: the same backend connection can serve every identity.
 */
export function createHeaderInjectionStrategy(config: HeaderInjectionConfig): OutgoingAuthStrategy {
  const { headerName, value } = config
  return {
    type: 'header_injection',
    identityScoped: false,
    // A fresh object per call: callers may merge into it.
    headers: async () => ({ [headerName]: value.reveal() }),
  }
}
