import { describe, expect, it } from 'vitest'
import { parseConfigText } from '../../../src/config/index.js'
import { buildRegistryBackends, matchesGlob, registryTokenKey } from '../../../src/registry/index.js'

const registry = (include = '[]') =>
  parseConfigText(`registries:\n  - { name: corp, url: "https://r.test", include: ${include} }\n`, { baseDir: '/', env: {} })
    .registries[0]!
const remote = (url = 'https://x.test/mcp') => [{ type: 'streamable-http', url }]

describe('registry listing → backends', () => {
  it('globs: * stays within a segment, ** crosses segments', () => {
    expect(matchesGlob('io.corp/jira', 'io.corp/*')).toBe(true)
    expect(matchesGlob('io.corp/team/jira', 'io.corp/*')).toBe(false)
    expect(matchesGlob('io.corp/team/jira', 'io.corp/**')).toBe(true)
    expect(matchesGlob('io.corpX/jira', 'io.corp/*')).toBe(false)
    expect(matchesGlob('ioXcorp/jira', 'io.corp/*')).toBe(false)
  })

  it('include filters, names are MCP-valid and unique, collisions with configured backends are skipped', () => {
    const out = buildRegistryBackends(
      registry('["io.corp/**"]'),
      [
        { name: 'io.corp/Jira Cloud!', remotes: remote() },
        { name: 'io.corp/Jira Cloud!', remotes: remote('https://dup.test') },
        { name: 'io.corp/a/Jira-Cloud-', remotes: remote() },
        { name: 'io.corp/notes', remotes: remote() },
        { name: 'io.corp/plain', remotes: [{ type: 'http', url: 'http://evil.test/mcp' }] },
        { name: 'io.corp/insecure', remotes: [{ type: 'sse', url: 'http://evil.test/sse' }] },
        { name: 'io.elsewhere/x', remotes: remote() },
      ],
      new Set(['notes']),
    )
    expect(out.backends.map((b) => b.name)).toEqual(['Jira-Cloud-', 'Jira-Cloud--2'])
    expect(out.skipped).toEqual([
      { server: 'io.corp/notes', reason: 'name "notes" is taken by a configured backend' },
      { server: 'io.corp/plain', reason: 'no streamable-http or sse remote' },
      { server: 'io.corp/insecure', reason: 'remote url must use https (http is allowed only for loopback hosts)' },
    ])
  })

  it('the store key is REGISTRY_OAUTH_ + 8 hex of sha256(url \\0 issuer)', () => {
    // sha256("https://r.test\0https://idp.test") computed independently with coreutils.
    expect(registryTokenKey('https://r.test', 'https://idp.test')).toBe('REGISTRY_OAUTH_0ec2f617')
    expect(registryTokenKey('https://r.test', 'https://idp.test')).not.toBe(registryTokenKey('https://r.test', 'https://idp2.test'))
  })
})
