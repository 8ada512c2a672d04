import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfigFile, type LoadConfigOptions } from '../../../src/config/index.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const CONFIGS = `${ROOT}fixtures/configs/`

// Only what the valid fixtures reference: an env var missing here must fail, never leak in from
// the developer's shell, so process.env is not used.
const options: LoadConfigOptions = {
  env: {
    VMCP_TEST_API_KEY: 'not-a-real-api-key-from-env',
    VMCP_TEST_INTROSPECTION_SECRET: 'not-a-real-introspection-secret',
  },
}

const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()

/** The `# expect: path: message` header lines, as the loader prints them after `- `. */
function expectedIssues(file: string): string[] {
  const lines = readFileSync(file, 'utf8').split('\n')
  const out: string[] = []
  for (const line of lines) {
    const m = /^# expect: (.+)$/.exec(line)
    if (!m) break
    out.push(`- ${m[1]}`)
  }
  return out
}

function loadError(file: string): ConfigError {
  try {
    loadConfigFile(file, options)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error(`${file} loaded, but it is meant to be invalid`)
}

describe('invalid fixtures', () => {
  const files = yamlFiles(`${CONFIGS}invalid`)

  it('cover at least 15 problem classes', () => {
    expect(files.length).toBeGreaterThanOrEqual(15)
  })

  it.each(files)('%s fails with exactly the issues in its header', (name) => {
    const file = `${CONFIGS}invalid/${name}`
    const expected = expectedIssues(file)
    expect(expected.length, `${name} must start with "# expect: path: message"`).toBeGreaterThan(0)
    const [heading, ...issues] = loadError(file).message.split('\n')
    expect(heading).toBe('invalid configuration:')
    expect(new Set(issues)).toEqual(new Set(expected))
    expect(issues).toHaveLength(expected.length)
  })
})

describe('valid configurations', () => {
  const files = [
    ...yamlFiles(`${CONFIGS}valid`).map((f) => `fixtures/configs/valid/${f}`),
    'fixtures/configs/mode-a.yaml',
    'vmcp.example.yaml',
  ]

  it('include at least 4 valid fixtures', () => {
    expect(files.length - 2).toBeGreaterThanOrEqual(4)
  })

  it.each(files)('%s loads', (file) => {
    const { config, path } = loadConfigFile(`${ROOT}${file}`, options)
    expect(path).toBe(`${ROOT}${file}`)
    expect(config.name).toBeTruthy()
  })

  it('mode-a.yaml is the Mode A shape the golden recording relies on', () => {
    const { config } = loadConfigFile(`${CONFIGS}mode-a.yaml`, options)
    expect(config.name).toBe('mode-a')
    expect(config.server.publicUrl).toBe('http://127.0.0.1:4483')
    expect(config.backends).toEqual([])
    expect(config.incomingAuth).toMatchObject({
      type: 'oidc',
      oidc: {
        issuer: 'http://127.0.0.1:4499',
        audience: 'http://127.0.0.1:4483/mcp',
        resource: 'http://127.0.0.1:4483/mcp',
        scopes: ['openid', 'mcp'],
      },
    })
  })

  it('vmcp.example.yaml aggregates notes, everything and weather with on-conflict prefixes', () => {
    const { config } = loadConfigFile(`${ROOT}vmcp.example.yaml`, options)
    expect(config.backends.map((b) => [b.name, b.transport])).toEqual([
      ['notes', 'stdio'],
      ['everything', 'stdio'],
      ['weather', 'streamable-http'],
    ])
    expect(config.incomingAuth.type).toBe('anonymous')
    expect(config.aggregation).toMatchObject({
      conflictResolution: 'prefix',
      prefixFormat: '{backend}_',
      prefixMode: 'on-conflict',
    })
    // Relative script paths only work because stdio cwd is the config's directory.
    const cwds = config.backends.flatMap((b) => (b.transport === 'stdio' ? [b.cwd] : []))
    expect(cwds).toEqual([ROOT.slice(0, -1), ROOT.slice(0, -1)])
  })
})
