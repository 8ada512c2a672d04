import type { Tool } from '@modelcontextprotocol/sdk/types.js'

// SEP-2243 (MCP 2026-07-28 §Custom Headers): an argument marked `x-mcp-header: Name` travels in
// the body and, mirrored, in an `Mcp-Param-Name` header that intermediaries can route on.
const MARKING = 'x-mcp-header'
const PREFIX = 'mcp-param-'
// The header name a marking may give: an RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// A value sent as it is: visible ASCII, inner spaces only (RFC 9110 §5.5 field-value, without
// obs-text); anything else goes Base64-encoded as `=?base64?…?=`.
const PLAIN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/

/** A value that can travel in an HTTP header as it is (no encoding needed). */
export function isPlainHeaderValue(value: string): boolean {
  return PLAIN.test(value)
}

const BASE64_FORM = /^=\?base64\?(.*)\?=$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const CANONICAL_DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

interface Declaration {
  /** The argument's path through `properties`. */
  path: string[]
  /** The header's name after `Mcp-Param-`, as the marking spells it. */
  name: string
  type: string | undefined
}

const declarations = new WeakMap<Tool, Declaration[]>()

/**
 * The marked arguments of a tool: `x-mcp-header` on properties reached through `properties`
 * only, with a token name (SEP-2243 allows markings nowhere else; others are ignored here).
 */
export function headerDeclarations(tool: Tool): Declaration[] {
  let found = declarations.get(tool)
  if (found) return found
  found = []
  if (JSON.stringify(tool.inputSchema).includes(`"${MARKING}"`)) visit(tool.inputSchema, [], found)
  declarations.set(tool, found)
  return found
}

function visit(schema: unknown, path: string[], out: Declaration[]): void {
  if (typeof schema !== 'object' || schema === null) return
  const node = schema as Record<string, unknown>
  const name = node[MARKING]
  if (path.length > 0 && typeof name === 'string' && TOKEN.test(name))
    out.push({ path, name, type: typeof node.type === 'string' ? node.type : undefined })
  const props = node.properties
  if (typeof props !== 'object' || props === null) return
  for (const [key, child] of Object.entries(props)) visit(child, [...path, key], out)
}

const markedByList = new WeakMap<readonly Tool[], Map<string, Tool>>()

/** The tool of this name in a list when it marks arguments (looked up once per list). */
export function markedTool(tools: readonly Tool[], name: string): Tool | undefined {
  let marked = markedByList.get(tools)
  if (!marked) {
    marked = new Map(tools.filter((t) => headerDeclarations(t).length > 0).map((t) => [t.name, t]))
    markedByList.set(tools, marked)
  }
  return marked.get(name)
}

/** A header disagreeing with the body: the -32020 answer's message and data. */
export interface HeaderMismatch {
  message: string
  data: { mismatch: { header: string; body: string } }
}

const mismatch = (header: string, body: string): HeaderMismatch => ({
  message: `Bad Request: the request headers and body disagree: ${body}`,
  data: { mismatch: { header, body } },
})

/**
 * Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments (SEP-2243, server side):
 * each marked argument present in the body as a primitive needs its header, whose value (the
 * Base64 form decoded) equals the argument's. A header in a malformed Base64 form or with
 * characters a header value may not carry is refused too. Headers for unmarked arguments are
 * ignored (and never passed on: vmcp sends a backend only those it derives from the body).
 */
export function checkParamHeaders(
  tool: Tool,
  args: unknown,
  headers: Pick<Headers, 'get'>,
): HeaderMismatch | undefined {
  for (const decl of headerDeclarations(tool)) {
    const header = `Mcp-Param-${decl.name}`
    const value = valueAt(args, decl.path)
    const expected = primitiveText(value)
    if (expected === undefined) continue
    const raw = headers.get(`${PREFIX}${decl.name}`)
    const where = decl.path.join('.')
    if (raw === null)
      return mismatch(header, `the body carries ${where} but the ${header} header is absent`)
    const decoded = decodeValue(raw)
    if (decoded === undefined)
      return mismatch(header, `the ${header} header is neither a plain value nor valid Base64`)
    const same =
      typeof value === 'number' && CANONICAL_DECIMAL.test(decoded)
        ? Number(decoded) === value
        : decoded === expected
    if (!same) return mismatch(header, `the ${header} header does not match ${where} in the body`)
  }
  return undefined
}

/** The `Mcp-Param-*` headers for a call to a backend whose tool is marked (SEP-2243, client side). */
export function paramHeaders(tool: Tool, args: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  for (const decl of headerDeclarations(tool)) {
    const text = primitiveText(valueAt(args, decl.path))
    if (text === undefined) continue
    out[`${PREFIX}${decl.name.toLowerCase()}`] =
      PLAIN.test(text) && !BASE64_FORM.test(text)
        ? text
        : `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`
  }
  return out
}

function valueAt(args: unknown, path: string[]): unknown {
  let node = args
  for (const key of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined
    node = Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined
  }
  return node
}

function primitiveText(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return String(value)
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

/** A header value as the client meant it: literal, or the UTF-8 text of its Base64 form. */
function decodeValue(raw: string): string | undefined {
  // Headers reach here as latin1: anything beyond visible ASCII was never a valid value.
  if (raw !== '' && !PLAIN.test(raw)) return undefined
  const b64 = BASE64_FORM.exec(raw)?.[1]
  if (b64 === undefined) return raw
  if (!BASE64.test(b64)) return undefined
  try {
    return utf8.decode(Buffer.from(b64, 'base64'))
  } catch {
    return undefined
  }
}
