import { ANONYMOUS_IDENTITY } from './identity.js'
import type { AuthResult, IncomingAuthenticator } from './types.js'

/**
 * No incoming auth: every request is the anonymous identity. There is no protected-resource
 * metadata, so clients are never sent into an OAuth flow.
 */
export function createAnonymousAuthenticator(): IncomingAuthenticator {
  // The same answer for every request: nothing to build per call.
  const answer: Promise<AuthResult> = Promise.resolve(Object.freeze({ ok: true, identity: ANONYMOUS_IDENTITY }))
  return {
    type: 'anonymous',
    authenticate: () => answer,
    protectedResourceMetadata() {
      return undefined
    },
  }
}
