import { describe, expect, it } from 'vitest'
import { clientError, invalidParams } from '../../../src/mcp/request-errors.js'
import type { RpcRequest } from '../../../src/mcp/routing/json-rpc.js'

const req = (method: string, params?: Record<string, unknown>): RpcRequest => ({
  jsonrpc: '2.0',
  id: 1,
  method,
  ...(params ? { params } : {}),
})

describe('invalidParams', () => {
  it('names what is missing or of the wrong type, by its path', () => {
    expect(invalidParams(req('tools/call'))).toBe('Invalid params for tools/call: params is required')
    expect(invalidParams(req('tools/call', { name: 5 }))).toBe('Invalid params for tools/call: params.name must be a string')
    expect(invalidParams(req('prompts/get', {}))).toBe('Invalid params for prompts/get: params.name is required')
    expect(invalidParams(req('resources/read', { uri: [] }))).toBe('Invalid params for resources/read: params.uri must be a string')
  })

  it('passes valid params and methods it has no shape for', () => {
    expect(invalidParams(req('tools/call', { name: 'x', arguments: {} }))).toBeUndefined()
    expect(invalidParams(req('tools/list'))).toBeUndefined()
    expect(invalidParams(req('vendor/custom', { anything: 1 }))).toBeUndefined()
  })
})

describe('clientError', () => {
  it('turns the SDK answer to bad params (-32603, raw zod issues) into -32602 with one readable line', () => {
    const raw = { code: -32603, message: '[\n  {\n    "expected": "object",\n    "code": "invalid_type"' }
    expect(clientError(req('tools/call'), raw)).toEqual({ code: -32602, message: 'Invalid params for tools/call: params is required' })
  })

  it('drops the "MCP error <code>: " prefixes the client adds itself, keeping code and data', () => {
    const error = { code: -32602, message: 'MCP error -32602: MCP error -32602: Unknown tool: x', data: { a: 1 } }
    expect(clientError(req('tools/call', { name: 'x' }), error)).toEqual({ code: -32602, message: 'Unknown tool: x', data: { a: 1 } })
  })

  it('leaves any other error as it is (same object)', () => {
    const error = { code: -32002, message: 'Resource not found: x://1' }
    expect(clientError(req('resources/read', { uri: 'x://1' }), error)).toBe(error)
  })
})
