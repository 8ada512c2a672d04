/**
 * The embedded OAuth 2.1 authorization server (Mode B). Other domains import only from here.
 */

/** Contracts between the authorization server, incoming auth and outgoing strategies. */
export {
  UpstreamRefreshError,
  type ClientRegistry,
  type CodeGrant,
  type CodeIssuer,
  type OAuthClient,
  type UpstreamTokenSource,
} from './contracts.js'

/**
 * Builds the embedded authorization server from `authServer.runConfig`: signing keys (loaded or
 * generated under dataDir), storage (memory or Redis), upstream IdP clients, and the Hono routes
 * to mount at the origin root. The caller mounts `app` and validates tokens with `getKey`.
 */
export { createAuthServer, type AuthServer, type AuthServerOptions } from './create-auth-server.js'

/**
 * The rate-limit key source behind `server.trustedProxies`: the TCP peer, or the first untrusted
 * hop of the configured forwarding header walked from the peer backwards. Malformed chains fall
 * back to the peer. Needs @hono/node-server's bindings passed to `app.fetch(req, env)`.
 */
export { createClientIpResolver, type ClientIpResolver } from './rate-limit.js'
