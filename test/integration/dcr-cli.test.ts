import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startDatadogLike, type DatadogLike } from '../../fixtures/datadog-like/datadog-like.mjs'
import { loadConfigFile } from '../../src/config/index.js'
import {
  createDcrManager,
  createDcrStoreFromConfig,
  dcrUpstreamSpecs,
} from '../../src/dcr/index.js'
import { createOutboundFetch } from '../../src/net/index.js'
import { memoryLogger } from '../support/vmcp.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = `${ROOT}dist/src/cli/main.js`

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

describe('vmcp dcr list | forget, and validate never registers', () => {
  let dd: DatadogLike
  let file: string
  let secrets: string[] = []
  beforeAll(async () => {
    dd = await startDatadogLike({ secretTtl: 3600 })
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-dcr-cli-'))
    file = join(dir, 'vmcp.yaml')
    writeFileSync(
      file,
      `incomingAuth:
  type: oidc
  oidc: { issuer: http://127.0.0.1:4483, audience: http://127.0.0.1:4483/mcp, resource: http://127.0.0.1:4483/mcp }
authServer:
  runConfig:
    issuer: http://127.0.0.1:4483
    allowedAudiences: [http://127.0.0.1:4483/mcp]
    dataDir: ${join(dir, 'data')}
    upstreams:
      - name: corp
        type: oidc
        oidc: { issuerUrl: http://127.0.0.1:1, clientId: vmcp }
      - name: datadog
        type: oauth2
        oauth2: { scopes: [mcp], resource: ${dd.resource}, dcr: { discoveryUrl: ${dd.issuer} } }
`,
    )
  })
  afterAll(async () => {
    await dd?.close()
  })

  it('validate reads the file and nothing else: no discovery, no registration', async () => {
    const res = await run(['validate', '--config', file])
    expect(res.code).toBe(0)
    expect(dd.counts).toMatchObject({ metadata: 0, registrations: 0 })
  })

  it('list shows upstream, issuer, client_id, age and secret expiry, never a secret; forget drops it', async () => {
    expect((await run(['dcr', 'list', '--config', file])).stdout).toBe('no cached registrations\n')
    // Register the way `vmcp serve` does, into the same dataDir.
    const rc = loadConfigFile(file).config.authServer?.runConfig
    if (!rc) throw new Error('no runConfig')
    const store = await createDcrStoreFromConfig(rc, memoryLogger().logger)
    const manager = createDcrManager({
      store,
      fetch: createOutboundFetch(),
      logger: memoryLogger().logger,
      issuer: rc.issuer,
      upstreams: dcrUpstreamSpecs(rc),
    })
    manager.start()
    await vi.waitFor(() => expect(manager.upstream('datadog')?.status().state).toBe('ready'), {
      timeout: 15_000,
    })
    const client = manager.upstream('datadog')?.client()
    secrets = [client?.clientSecret ?? 'missing']
    secrets.push(...(await store.list()).map((c) => c.registrationAccessToken ?? 'missing'))
    await manager.close()

    const list = await run(['dcr', 'list', '--config', file])
    expect(list.code).toBe(0)
    const [header, row, ...rest] = list.stdout.trim().split('\n')
    expect(header).toBe('UPSTREAM\tISSUER\tCLIENT_ID\tAGE\tSECRET_EXPIRES')
    expect(rest).toEqual([])
    expect(row?.split('\t')).toEqual([
      'datadog',
      dd.issuer,
      client?.clientId,
      '0d',
      expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
    ])
    for (const s of secrets) expect(list.stdout + list.stderr).not.toContain(s)

    const missing = await run(['dcr', 'forget', '--config', file, '--upstream', 'nope'])
    expect(missing).toMatchObject({
      code: 1,
      stderr: 'vmcp: no cached registration for upstream "nope" (cached: datadog)\n',
    })
    const forget = await run(['dcr', 'forget', '--config', file, '--upstream', 'datadog'])
    expect(forget).toMatchObject({
      code: 0,
      stdout: `forgot 1 registration(s) of upstream datadog (client_id ${client?.clientId}); restart vmcp to register again\n`,
    })
    expect((await run(['dcr', 'list', '--config', file])).stdout).toBe('no cached registrations\n')
  })

  it('usage errors exit 2', async () => {
    expect(await run(['dcr', 'forget', '--config', file])).toMatchObject({
      code: 2,
      stderr: 'vmcp: dcr forget needs --upstream NAME\n',
    })
    expect(await run(['dcr', 'show', '--config', file])).toMatchObject({
      code: 2,
      stderr: 'vmcp: dcr needs a subcommand: list or forget (got "show")\n',
    })
  })
})
