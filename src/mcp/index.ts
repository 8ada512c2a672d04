export { buildView, routeResource, type AggregatedView, type Route, type ViewDiagnostic } from './aggregator.js'
export type { BackendHealth } from './backend-runtime.js'
export {
  createGateway,
  type BackendStatus,
  type DirectReply,
  type ExposedTool,
  type Gateway,
  type GatewayOptions,
  type GatewayRouting,
  type GatewayChange,
  type GatewayStatus,
} from './gateway.js'
export { claimsEnvelope, classifyEra, MODERN_PROTOCOL_VERSIONS, type Era } from './modern/era.js'
export { createModernEndpoint, type ModernEndpoint, type ModernEndpointOptions } from './modern/endpoint.js'
export { deriveRequestStateKey } from './modern/request-state.js'
export { isValidToolName, toValidName } from './naming.js'
export type { ClientRequestId, ReplyChannel } from './routing/call-table.js'
export {
  INVALID_REQUEST,
  isJsonContentType,
  isRpcPayload,
  REQUEST_CANCELLED,
  type RpcMessage,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
} from './routing/json-rpc.js'
