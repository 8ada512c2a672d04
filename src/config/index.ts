export { ConfigError, formatIssues, type ConfigIssue } from './errors.js'
export { diffConfig, mergeLive, sameValue, strategyOf, type ConfigDiff } from './diff.js'
export { parseDuration } from './duration.js'
export { closest, didYouMean } from './suggest.js'
export { editRegistryAuth, type RegistryAuthEdit } from './edit.js'
export { buildConfigJsonSchema } from './json-schema.js'
export {
  configWarnings,
  decodeKey,
  loadConfigFile,
  parseConfigText,
  validateConfig,
  type LoadConfigOptions,
  type LoadedConfig,
} from './load.js'
export type {
  AggregationConfig,
  AuthServerConfig,
  UpstreamConfig,
  BackendConfig,
  HttpBackendConfig,
  IncomingAuthConfig,
  OidcConfig,
  OperationalConfig,
  OutgoingStrategyConfig,
  RegistryAuthConfig,
  RegistryConfig,
  ServerConfig,
  StdioBackendConfig,
  PromptOverrideConfig,
  ToolOverrideConfig,
  VmcpConfig,
} from './schema.js'
