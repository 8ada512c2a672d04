import type { Tool } from '@modelcontextprotocol/sdk/types.js'

const MARKING = 'x-mcp-header'

/**
 * A tool as shown to 2026-07-28 callers, without `x-mcp-header` markings (SEP-2243). A client
 * that sees a marking mirrors that argument into an `Mcp-Param-*` header, and the server must
 * then check header against body; vmcp's per-request server has no tool registry for the SDK
 * to check against, so it does not invite the headers (stripped, never half-honoured). Calls
 * still work: the arguments travel in the body, which is what every backend reads.
 */
export function stripMcpHeaderMarkings(tool: Tool): Tool {
  if (!JSON.stringify(tool.inputSchema).includes(`"${MARKING}"`)) return tool
  return { ...tool, inputSchema: strip(tool.inputSchema) as Tool['inputSchema'] }
}

function strip(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strip)
  if (typeof node !== 'object' || node === null) return node
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(node)) if (k !== MARKING) out[k] = strip(v)
  return out
}
