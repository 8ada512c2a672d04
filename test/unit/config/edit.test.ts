import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ConfigError, editRegistryAuth, loadConfigFile } from '../../../src/config/index.js'

const CLI = fileURLToPath(new URL('../../../dist/src/cli/main.js', import.meta.url))
const TEXT = `# top comment
registries:
  # the corporate registry
  - name: corp
    url: https://registry.corp.example # trailing comment
    include: [io.corp/*]
`

function file(text = TEXT): string {
  const f = join(mkdtempSync(join(tmpdir(), 'vmcp-edit-')), 'vmcp.yaml')
  writeFileSync(f, text)
  return f
}

describe('registry set-auth / unset-auth edit the YAML in place', () => {
  it('adds and removes auth, keeping every comment', () => {
    const f = file()
    editRegistryAuth(f, 'corp', { issuer: 'https://login.corp.example', clientId: 'vmcp', scopes: ['registry.read'] })
    const text = readFileSync(f, 'utf8')
    for (const c of ['# top comment', '# the corporate registry', '# trailing comment']) expect(text).toContain(c)
    expect(loadConfigFile(f).config.registries[0]?.auth).toEqual({
      type: 'oauth',
      issuer: 'https://login.corp.example',
      clientId: 'vmcp',
      scopes: ['registry.read'],
    })
    editRegistryAuth(f, 'corp', undefined)
    expect(readFileSync(f, 'utf8')).toBe(TEXT)
  })

  it('an invalid result or an unknown registry leaves the file untouched', () => {
    const f = file()
    expect(() => editRegistryAuth(f, 'corp', { issuer: 'http://login.corp.example', clientId: 'vmcp' })).toThrow(ConfigError)
    expect(() => editRegistryAuth(f, 'other', undefined)).toThrow('no registry named "other"')
    expect(readFileSync(f, 'utf8')).toBe(TEXT)
  })

  it('through the CLI', () => {
    const f = file()
    const out = execFileSync(process.execPath, [CLI, 'registry', 'set-auth', '--config', f, '--registry', 'corp', '--issuer', 'https://login.corp.example', '--client-id', 'vmcp', '--scopes', 'a,b', '--audience', 'api://r'], { encoding: 'utf8' })
    expect(out).toBe(`set the sign-in of registry corp in ${f}\n`)
    expect(loadConfigFile(f).config.registries[0]?.auth).toMatchObject({ scopes: ['a', 'b'], audience: 'api://r' })
    execFileSync(process.execPath, [CLI, 'registry', 'unset-auth', '--config', f, '--registry', 'corp'])
    expect(readFileSync(f, 'utf8')).toBe(TEXT)
  })
})
