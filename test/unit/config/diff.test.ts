import { describe, expect, it } from 'vitest'
import { diffConfig, mergeLive, parseConfigText } from '../../../src/config/index.js'

const parse = (text: string, env: Record<string, string> = {}) => parseConfigText(text, { baseDir: '/srv/vmcp', env })
const backend = (name: string, port: number) =>
  `  - { name: ${name}, transport: streamable-http, url: http://127.0.0.1:${port}/mcp }`

describe('diffConfig (hot reload)', () => {
  const base = parse(['backends:', backend('a', 1), backend('b', 2), backend('c', 3)].join('\n'))

  it('matches backends by name: added, removed, changed (stop + start), unchanged untouched', () => {
    const next = parse(['backends:', backend('a', 1), backend('b', 20), backend('d', 4)].join('\n'))
    const diff = diffConfig(base, next)
    expect(diff.changed).toEqual(['b'])
    expect(diff.removed.sort()).toEqual(['b', 'c'])
    expect(diff.added.map((b) => b.name).sort()).toEqual(['b', 'd'])
    expect(diff.aggregation).toBeUndefined()
    expect(diff.restartRequired).toEqual([])
  })

  it('a different effective outgoing strategy changes the backend; a secret compares by content', () => {
    const withKey = (v: string) =>
      parse(
        ['backends:', backend('a', 1), backend('b', 2), 'outgoingAuth:', '  backends:', '    a: { type: header_injection, headerInjection: { headerName: X-Key, value: { env: K } } }'].join('\n'),
        { K: v },
      )
    expect(diffConfig(withKey('one'), withKey('one')).changed).toEqual([])
    expect(diffConfig(withKey('one'), withKey('two')).changed).toEqual(['a'])
    // A new default reaches every backend without an own entry.
    const def = parse(['backends:', backend('a', 1), backend('b', 2), 'outgoingAuth:', '  default: { type: header_injection, headerInjection: { headerName: X-Key, value: { env: K } } }'].join('\n'), { K: 'x' })
    expect(diffConfig(parse(['backends:', backend('a', 1), backend('b', 2)].join('\n')), def).changed).toEqual(['a', 'b'])
  })

  it('registries are live: a change hands over the new list', () => {
    const next = parse(['registries: [{ name: corp, url: https://registry.example.com }]', 'backends:', backend('a', 1), backend('b', 2), backend('c', 3)].join('\n'))
    const diff = diffConfig(base, next)
    expect(diff.registries?.map((r) => r.name)).toEqual(['corp'])
    expect(diff.restartRequired).toEqual([])
    expect(mergeLive(base, next).registries).toHaveLength(1)
  })

  it('aggregation is live; server, authServer-like sections and operational keys need a restart', () => {
    const next = parse(
      ['name: other', 'server: { port: 9999 }', 'operational: { callTimeout: 5s }', "aggregation: { prefixFormat: '{backend}.' }", 'backends:', backend('a', 1), backend('b', 2), backend('c', 3)].join('\n'),
    )
    const diff = diffConfig(base, next)
    expect(diff.aggregation?.prefixFormat).toBe('{backend}.')
    expect(diff.registries).toBeUndefined()
    expect(diff.restartRequired.sort()).toEqual(['name', 'operational.callTimeout', 'server.port'])
    const merged = mergeLive(base, next)
    expect(merged.server.port).toBe(base.server.port)
    expect(merged.name).toBe('vmcp')
    expect(merged.aggregation.prefixFormat).toBe('{backend}.')
  })
})
