import type { OutgoingAuthStrategy } from './types.js'

const NONE: Readonly<Record<string, string>> = Object.freeze({})

/** Sends no credentials: for backends that need none (or authenticate by network position). */
export function createUnauthenticatedStrategy(): OutgoingAuthStrategy {
  return {
    type: 'unauthenticated',
    identityScoped: false,
    headers: async () => ({}),
    headersNow: () => NONE,
  }
}
