import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningBackend } from '../support/backends.js'
import { callTextV2, connectV2, fixtureBehindBothPaths, postModern } from '../support/modern.js'
import type { RunningVmcp } from '../support/vmcp.js'

// The conformance suite's diagnostic tools (fixture --conformance) on a backend that serves
// both eras: a 2026-07-28 caller gets the revision's own answers through vmcp, on the raw relay
// and on the v2 client path alike.
describe('2026-07-28 answers of a dual-era backend through vmcp', () => {
  let dual: RunningBackend
  let raw: RunningVmcp
  let sdk: RunningVmcp
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ backend: dual, raw, sdk, close } = await fixtureBehindBothPaths('dual', ['--conformance']))
  })
  afterAll(() => close?.())

  it('answers -32021 with HTTP 400 when a backend needs a capability not declared', async () => {
    const direct = await postModern(
      dual.url,
      'tools/call',
      { name: 'test_missing_capability', arguments: {} },
      { 'mcp-name': 'test_missing_capability' },
    )
    expect(direct.status).toBe(400)
    for (const vmcp of [raw, sdk]) {
      const name = 'dual_test_missing_capability'
      const params = { name, arguments: {} }
      const res = await postModern(vmcp.url, 'tools/call', params, { 'mcp-name': name })
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32021, data: { requiredCapabilities: { sampling: {} } } },
      })
      // A v2 client sees the typed error, not a tool result.
      const client = await connectV2(vmcp.url, { pin: '2026-07-28' })
      await expect(client.callTool({ name, arguments: {} })).rejects.toMatchObject({ code: -32021 })
      await client.close()
    }
  })

  // Every keyword and value kept (the SDK's schema parse puts `type` first: key order aside).
  it('lists a JSON Schema 2020-12 input schema as the backend does', async () => {
    const schemaOf = (body: Record<string, unknown>, name: string) =>
      (body.result as { tools: Array<{ name: string; inputSchema: unknown }> }).tools.find(
        (t) => t.name === name,
      )?.inputSchema
    const listedDirectly = (await postModern(dual.url, 'tools/list')).body
    const direct = schemaOf(listedDirectly, 'json_schema_2020_12_tool')
    expect(direct).toMatchObject({ $defs: { address: { $anchor: 'addressDef' } }, allOf: [{}] })
    for (const vmcp of [raw, sdk]) {
      const listed = (await postModern(vmcp.url, 'tools/list')).body
      expect(schemaOf(listed, 'dual_json_schema_2020_12_tool')).toStrictEqual(direct)
    }
  })

  it('relays no log message to a caller whose request did not ask for a log level', async () => {
    for (const vmcp of [raw, sdk]) {
      const client = await connectV2(vmcp.url, { pin: '2026-07-28' })
      const logs: unknown[] = []
      client.setNotificationHandler('notifications/message', (n) => void logs.push(n))
      expect(await callTextV2(client, 'dual_test_logging_tool')).toBe('Logging evaluated')
      expect(logs).toEqual([])
      await client.close()
    }
  })
})
