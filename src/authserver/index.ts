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
