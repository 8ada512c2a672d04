import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import { describe, expect, it } from 'vitest'
import { parseConfigText } from '../../../src/config/index.js'
import { buildView, routeResource, type BackendCatalog } from '../../../src/mcp/aggregator.js'
import type { Catalog } from '../../../src/mcp/catalog.js'
import { isValidToolName, toValidName } from '../../../src/mcp/naming.js'

const tool = (name: string, description = `${name} tool`): Tool => ({
  name,
  description,
  inputSchema: { type: 'object' },
})

function catalog(tools: string[], extra: Partial<Catalog> = {}): Catalog {
  return {
    tools: tools.map((t) => tool(t)),
    resources: [],
    resourceTemplates: [],
    prompts: [],
    capabilities: { tools: {} },
    serverInfo: undefined,
    ...extra,
  }
}

const backends: BackendCatalog[] = [
  { backend: 'github', catalog: catalog(['search', 'create_issue']) },
  { backend: 'jira', catalog: catalog(['search', 'create_ticket']) },
]

// Aggregation config goes through the real schema, so defaults are the ones users get.
function agg(yaml: string) {
  const body = yaml ? `\n${yaml.split('\n').map((l) => `  ${l}`).join('\n')}` : ' {}'
  const text = `backends:\n  - { name: github, transport: stdio, command: x }\n  - { name: jira, transport: stdio, command: x }\naggregation:${body}`
  return parseConfigText(text, { baseDir: '.' }).aggregation
}

const names = (v: ReturnType<typeof buildView>) => v.view.tools.map((t) => t.name).sort()
const withPrompts: BackendCatalog[] = backends.map((b) => ({
  backend: b.backend,
  catalog: { ...b.catalog, prompts: [{ name: 'summarize' }] },
}))

describe('conflict resolution', () => {
  it('prefix/always prefixes every tool with {backend}_', () => {
    const v = buildView(backends, agg('conflictResolution: prefix'))
    expect(names(v)).toEqual(['github_create_issue', 'github_search', 'jira_create_ticket', 'jira_search'])
    expect(v.view.toolRoutes.get('jira_search')).toEqual({ backend: 'jira', name: 'search' })
  })

  it('prefix with a custom prefixFormat', () => {
    const v = buildView(backends, agg('prefixFormat: "{backend}."'))
    expect(names(v)).toContain('github.search')
  })

  it('prefix/on-conflict keeps names that collide with nothing', () => {
    const v = buildView(backends, agg('prefixMode: on-conflict'))
    expect(names(v)).toEqual(['create_issue', 'create_ticket', 'github_search', 'jira_search'])
    expect(v.view.toolRoutes.get('create_issue')).toEqual({ backend: 'github', name: 'create_issue' })
  })

  it('priority: the earliest backend in priorityOrder wins a conflict, losers hidden', () => {
    const v = buildView(backends, agg('conflictResolution: priority\npriorityOrder: [jira, github]'))
    expect(names(v)).toEqual(['create_issue', 'create_ticket', 'search'])
    expect(v.view.toolRoutes.get('search')).toEqual({ backend: 'jira', name: 'search' })
    expect(v.diagnostics).toMatchObject([{ level: 'warn', backend: 'github' }])
    expect(v.diagnostics[0]?.message).toMatch(/^tool search hidden: jira has priority; /)
  })

  it('manual: an unresolved conflict is hidden with one error line naming the fix', () => {
    const v = buildView(backends, agg('conflictResolution: manual'))
    expect(names(v)).toEqual(['create_issue', 'create_ticket'])
    expect(v.diagnostics).toEqual([
      {
        level: 'error',
        backend: 'github, jira',
        message:
          'tool search is offered by github and jira; hidden until renamed (manual conflict resolution): aggregation.tools: [{ backend: jira, overrides: { search: { name: jira_search } } }]',
      },
    ])
  })

  it('manual: an override renaming one side settles the conflict', () => {
    const v = buildView(
      backends,
      agg('conflictResolution: manual\ntools:\n  - backend: jira\n    overrides:\n      search: { name: jira_search }'),
    )
    expect(names(v)).toEqual(['create_issue', 'create_ticket', 'jira_search', 'search'])
    expect(v.view.toolRoutes.get('jira_search')).toEqual({ backend: 'jira', name: 'search' })
    expect(v.view.toolRoutes.get('search')).toEqual({ backend: 'github', name: 'search' })
  })

  it('prompts follow the same rules as tools', () => {
    const v = buildView(withPrompts, agg('conflictResolution: priority\npriorityOrder: [github]'))
    expect(v.view.prompts.map((p) => p.name)).toEqual(['summarize'])
    expect(v.view.promptRoutes.get('summarize')?.backend).toBe('github')
  })

  it('priority: one warning per conflict, however many backends lose, with a rename that exposes them', () => {
    const three = [...backends, { backend: 'linear', catalog: catalog(['search']) }]
    const v = buildView(three, agg('conflictResolution: priority\npriorityOrder: [github]'))
    expect(v.diagnostics).toEqual([
      {
        level: 'warn',
        backend: 'jira, linear',
        message:
          'tool search hidden: github has priority; to expose it too, rename it: aggregation.tools: [{ backend: jira, overrides: { search: { name: jira_search } } }, { backend: linear, overrides: { search: { name: linear_search } } }]',
      },
    ])
  })

  // The fix a conflict message offers, applied as the operator would paste it, must settle it.
  it.each([
    ['manual', 'conflictResolution: manual'],
    ['priority', 'conflictResolution: priority\npriorityOrder: [github]'],
  ])('%s: the fix offered for a tool and for a prompt works when pasted', (_, rules) => {
    const before = buildView(withPrompts, agg(rules))
    const fixes = before.diagnostics.map((d) => /: (aggregation\.(tools|prompts): \[.*\])$/.exec(d.message)?.[1])
    expect(fixes).toHaveLength(2)
    expect(fixes[1]).toMatch(/^aggregation\.prompts: /)
    const pasted = fixes.map((f) => (f ?? '').replace(/^aggregation\./, '')).join('\n')
    const after = buildView(withPrompts, agg(`${rules}\n${pasted}`))
    expect(after.diagnostics).toEqual([])
    expect(names(after)).toEqual(['create_issue', 'create_ticket', 'jira_search', 'search'])
    expect(after.view.prompts.map((p) => p.name).sort()).toEqual(['jira_summarize', 'summarize'])
    expect(after.view.promptRoutes.get('jira_summarize')).toEqual({ backend: 'jira', name: 'summarize' })
  })

  it('a name clash after the MCP name rules is hidden with a rename that works', () => {
    const clash: BackendCatalog[] = [
      { backend: 'a', catalog: catalog(['b_c']) },
      { backend: 'a_b', catalog: catalog(['c']) },
    ]
    const aggregation = (extra: string) =>
      parseConfigText(
        `backends:\n  - { name: a, transport: stdio, command: x }\n  - { name: a_b, transport: stdio, command: x }\naggregation:\n  conflictResolution: prefix${extra}`,
        { baseDir: '.' },
      ).aggregation
    const v = buildView(clash, aggregation(''))
    expect(v.diagnostics).toHaveLength(1)
    const fix = /: aggregation\.tools: (\[.*\])$/.exec(v.diagnostics[0]?.message ?? '')?.[1]
    expect(fix).toBe('[{ backend: a_b, overrides: { c: { name: a_b_c_2 } } }]')
    const fixed = buildView(clash, aggregation(`\n  tools: ${fix}`))
    expect(fixed.diagnostics).toEqual([])
    expect(names(fixed)).toEqual(['a_b_c', 'a_b_c_2'])
  })
})

describe('prompt filters and overrides (aggregation.prompts)', () => {
  it('filter, exclude and overrides of name, title and description, like tools', () => {
    const prompts: BackendCatalog[] = [
      {
        backend: 'github',
        catalog: catalog([], { prompts: [{ name: 'summarize', description: 'd' }, { name: 'review' }, { name: 'triage' }] }),
      },
    ]
    const v = buildView(
      prompts,
      agg('prompts:\n  - backend: github\n    exclude: [triage]\n    overrides:\n      summarize: { name: sum, title: Summary, description: Summarize a PR }'),
    )
    expect(v.view.prompts).toEqual([
      { name: 'sum', title: 'Summary', description: 'Summarize a PR' },
      { name: 'github_review' },
    ])
    expect(v.view.promptRoutes.get('sum')).toEqual({ backend: 'github', name: 'summarize' })
    const only = buildView(prompts, agg('prompts:\n  - { backend: github, filter: [review] }'))
    expect(only.view.prompts.map((p) => p.name)).toEqual(['github_review'])
  })
})

describe('filters and overrides', () => {
  it('filter keeps only listed tools; exclude removes tools', () => {
    const v = buildView(
      backends,
      agg('tools:\n  - { backend: github, filter: [search] }\n  - { backend: jira, exclude: [create_ticket] }'),
    )
    expect(names(v)).toEqual(['github_search', 'jira_search'])
  })

  it('overrides change name, description and annotations; the overridden name is not prefixed', () => {
    const v = buildView(
      backends,
      agg(
        'tools:\n  - backend: github\n    overrides:\n      create_issue:\n        name: new_issue\n        description: Open a GitHub issue\n        annotations: { destructiveHint: false, title: New issue }',
      ),
    )
    const t = v.view.tools.find((x) => x.name === 'new_issue')
    expect(t).toMatchObject({ description: 'Open a GitHub issue', annotations: { destructiveHint: false, title: 'New issue' } })
    expect(v.view.toolRoutes.get('new_issue')).toEqual({ backend: 'github', name: 'create_issue' })
  })

  it('two overrides onto one name: the second is hidden with an error', () => {
    const v = buildView(
      backends,
      agg(
        'tools:\n  - backend: github\n    overrides: { search: { name: find } }\n  - backend: jira\n    overrides: { search: { name: find } }',
      ),
    )
    expect(v.view.toolRoutes.get('find')?.backend).toBe('github')
    expect(v.diagnostics.some((d) => d.level === 'error' && d.backend === 'jira')).toBe(true)
  })
})

describe('MCP tool name rules', () => {
  it('accepts 1-64 characters of [A-Za-z0-9_.-] only', () => {
    expect(isValidToolName('a.b-c_D9')).toBe(true)
    expect(isValidToolName('')).toBe(false)
    expect(isValidToolName('x'.repeat(65))).toBe(false)
    expect(isValidToolName('has space')).toBe(false)
  })

  it('shortens long names deterministically with a hash suffix', () => {
    const long = `backend_${'very_long_tool_name_'.repeat(5)}`
    const a = toValidName(long)
    expect(a).toHaveLength(64)
    expect(isValidToolName(a)).toBe(true)
    expect(toValidName(long)).toBe(a)
    expect(toValidName(`${long}x`)).not.toBe(a)
    // Stable across runs and versions: pinned value.
    expect(a).toBe(`${long.slice(0, 55)}_${a.slice(56)}`)
  })

  it('maps invalid characters and keeps distinct inputs distinct', () => {
    expect(isValidToolName(toValidName('get weather'))).toBe(true)
    expect(toValidName('get weather')).not.toBe(toValidName('get_weather'))
    expect(toValidName('get_weather')).toBe('get_weather')
  })

  it('exposed names from a long backend and tool name satisfy the rules', () => {
    const longBackend: BackendCatalog[] = [
      { backend: 'a-backend-with-a-rather-long-name', catalog: catalog(['an_equally_long_tool_name_for_testing_purposes']) },
    ]
    const v = buildView(longBackend, agg(''))
    const [t] = v.view.tools
    expect(t && isValidToolName(t.name)).toBe(true)
    expect(v.view.toolRoutes.get(t?.name ?? '')).toEqual({
      backend: 'a-backend-with-a-rather-long-name',
      name: 'an_equally_long_tool_name_for_testing_purposes',
    })
  })
})

describe('resources', () => {
  it('never rewrites URIs; first backend wins; templates route reads', () => {
    const v = buildView(
      [
        { backend: 'a', catalog: catalog([], { resources: [{ uri: 'x://1', name: '1' }], resourceTemplates: [{ uriTemplate: 'x://items/{id}', name: 'i' }] }) },
        { backend: 'b', catalog: catalog([], { resources: [{ uri: 'x://1', name: '1b' }, { uri: 'y://2', name: '2' }] }) },
      ],
      agg(''),
    )
    expect(v.view.resources.map((r) => r.uri)).toEqual(['x://1', 'y://2'])
    expect(routeResource(v.view, 'x://1')).toBe('a')
    expect(routeResource(v.view, 'y://2')).toBe('b')
    expect(routeResource(v.view, 'x://items/42')).toBe('a')
    expect(routeResource(v.view, 'z://none')).toBeUndefined()
    expect(v.diagnostics).toContainEqual({ level: 'warn', backend: 'b', message: 'resource x://1 is also offered by a; a wins' })
  })
})
