/**
 * vmcp as a library: build a config, create the server, start it.
 *
 * ```ts
 * const { config } = loadConfigFile('vmcp.yaml')
 * const vmcp = createVmcp({ config })
 * const { url } = await vmcp.start()
 * ```
 */
export {
  buildConfigJsonSchema,
  ConfigError,
  loadConfigFile,
  parseConfigText,
  validateConfig,
  type VmcpConfig,
} from './config/index.js'
export type { Identity } from './auth/incoming/index.js'
export { createLogger, type Logger } from './log/index.js'
export { createVmcp, type Vmcp, type VmcpOptions } from './server/index.js'
