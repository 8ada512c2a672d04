import { ANONYMOUS_IDENTITY } from './identity.js'
import type { IncomingAuthenticator } from './types.js'

/**
 * No incoming auth: every request is the anonymous identity. There is no protected-resource
 * metadata, so clients are never sent into an OAuth flow.
 */
export function createAnonymousAuthenticator(): IncomingAuthenticator {
  return {
    type: 'anonymous',
    async authenticate() {
      return { ok: true, identity: ANONYMOUS_IDENTITY }
    },
    protectedResourceMetadata() {
      return undefined
    },
  }
}
