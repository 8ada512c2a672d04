export { createApp, MCP_PATH, type CreateAppOptions } from './app.js'
export { createVmcp, type ReloadResult, type Vmcp, type VmcpOptions } from './vmcp.js'
