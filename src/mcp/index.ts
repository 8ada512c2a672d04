export { buildView, routeResource, type AggregatedView, type Route, type ViewDiagnostic } from './aggregator.js'
export type { BackendHealth } from './backend-runtime.js'
export {
  createGateway,
  type BackendStatus,
  type Gateway,
  type GatewayOptions,
  type GatewayStatus,
} from './gateway.js'
export { isValidToolName, toValidName } from './naming.js'
