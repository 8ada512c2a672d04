import type { OutgoingAuthStrategy } from './types.js'

/** Sends no credentials: for backends that need none (or authenticate by network position). */
export function createUnauthenticatedStrategy(): OutgoingAuthStrategy {
  return {
    type: 'unauthenticated',
    identityScoped: false,
    headers: async () => ({}),
  }
}
