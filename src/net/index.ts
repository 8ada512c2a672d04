export { abortable } from './abortable.js'
export {
  createClientAddressResolver,
  isCidrOrAddress,
  parseAddress,
  type ClientAddressOptions,
  type ForwardedHeader,
} from './client-address.js'
export {
  createOutboundFetch,
  outboundDispatcher,
  readLimitedText,
  readStreamLimited,
  SsrfBlockedError,
  type FetchLike,
  type OutboundFetchOptions,
} from './fetch.js'
export { isPrivateAddress } from './ssrf.js'
export { checkSecureUrl, isLoopbackHost } from './url-policy.js'
