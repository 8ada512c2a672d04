import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBackend, type RunningBackend } from '../support/backends.js'
import { callText, connectClient, startVmcp, type RunningVmcp } from '../support/vmcp.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = `${ROOT}dist/src/cli/main.js`

const API_KEY = 'secret-api-key-8c1d'
const TEST_HEADER = 'secret-test-header-2f9e'
const BEARER = 'secret-bearer-token-5a7b'

describe('secret headers: backends[].headers refs and a multi-header header_injection', () => {
  let backend: RunningBackend
  beforeAll(async () => {
    backend = await startTestBackend(['--name', 'b'])
  })
  afterAll(async () => {
    await backend?.close()
  })

  // The relay and the SDK client path build their outgoing headers separately: both are checked.
  describe.each([true, false])('relay %s', (relay) => {
    let gw: RunningVmcp
    beforeAll(async () => {
      gw = await startVmcp(
        {
          backends: [
            {
              name: 'dd',
              transport: 'streamable-http',
              url: backend.url,
              headers: { 'X-Test-Header': { env: 'SH_TEST_HEADER' } },
            },
            { name: 'gh', transport: 'streamable-http', url: backend.url, headers: { 'X-Test-Header': 'plain' } },
          ],
          outgoingAuth: {
            backends: {
              gh: {
                type: 'header_injection',
                headerInjection: {
                  headers: {
                    'X-API-Key': { env: 'SH_API_KEY' },
                    Authorization: { env: 'SH_BEARER', prefix: 'Bearer ' },
                  },
                },
              },
            },
          },
        },
        { env: { SH_TEST_HEADER: TEST_HEADER, SH_API_KEY: API_KEY, SH_BEARER: BEARER }, relay, level: 'trace' },
      )
    })
    afterAll(async () => {
      await gw?.close()
    })

    it('a backend header from an env secret ref reaches the backend', async () => {
      const client = await connectClient(gw.url)
      const seen = JSON.parse(await callText(client, 'dd_whoami')) as Record<string, string | null>
      expect(seen).toEqual({ authorization: null, 'x-api-key': null, 'x-test-header': TEST_HEADER })
      await client.close()
    })

    it('header_injection with headers: every header is sent, the prefix before its secret', async () => {
      const client = await connectClient(gw.url)
      const seen = JSON.parse(await callText(client, 'gh_whoami')) as Record<string, string | null>
      expect(seen).toEqual({ authorization: `Bearer ${BEARER}`, 'x-api-key': API_KEY, 'x-test-header': 'plain' })
      await client.close()
    })

    it('no header secret reaches the log at trace level', () => {
      const text = gw.logs.join('\n')
      expect(gw.logs.length).toBeGreaterThan(5)
      for (const secret of [API_KEY, TEST_HEADER, BEARER]) expect(text).not.toContain(secret)
    })
  })
})

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** `vmcp validate` as a user runs it, with exactly the given variables added to a clean env. */
function validate(file: string, vars: Record<string, string>): Promise<Result> {
  const keep = ['PATH', 'HOME', 'SYSTEMROOT']
  const env = { ...Object.fromEntries(keep.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : []))), ...vars }
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'validate', '--config', file], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

describe('examples/: header secrets from the environment', () => {
  it.each([
    ['examples/datadog.yaml', { DD_API_KEY: 'k1', DD_APPLICATION_KEY: 'k2' }],
    ['examples/github.yaml', { GITHUB_TOKEN: 'github_pat_x' }],
  ])('%s is valid with its variables set', async (file, vars) => {
    const r = await validate(file, vars)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('configuration is valid: 1 backend(s), incoming auth anonymous\n')
    expect(r.code).toBe(0)
  })

  it('examples/datadog.yaml without the keys names each missing variable at its header', async () => {
    const r = await validate('examples/datadog.yaml', {})
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('- backends[0].headers.DD-API-KEY: environment variable DD_API_KEY is not set')
    expect(r.stderr).toContain(
      '- backends[0].headers.DD-APPLICATION-KEY: environment variable DD_APPLICATION_KEY is not set',
    )
    expect(r.stderr).toContain('hint: export the variables above, e.g. export DD_API_KEY=… DD_APPLICATION_KEY=…\n')
    expect(r.stderr).not.toContain('demo:mode-b')
  })

  it('examples/github.yaml without GITHUB_TOKEN says which variable to set', async () => {
    const r = await validate('examples/github.yaml', {})
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      '- outgoingAuth.backends.github.headerInjection.headers.Authorization: environment variable GITHUB_TOKEN is not set',
    )
  })
})
