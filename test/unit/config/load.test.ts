import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import {
  ConfigError,
  loadConfigFile,
  parseConfigText,
  parseDuration,
  type VmcpConfig,
} from '../../../src/config/index.js'
import { Secret } from '../../../src/log/secret.js'

const BASE = '/srv/vmcp'
const parse = (text: string, env: Record<string, string> = {}) =>
  parseConfigText(text, { baseDir: BASE, env })

/** The `- path: message` lines of the ConfigError that `fn` throws. */
function issueLines(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    const [heading, ...lines] = err.message.split('\n')
    expect(heading).toBe('invalid configuration:')
    expect(lines).toHaveLength(err.issues.length)
    return lines
  }
  throw new Error('expected a ConfigError')
}

const stdio = `backends:\n  - { name: notes, transport: stdio, command: node }\n`

describe('defaults', () => {
  it('an empty file is a complete configuration', () => {
    const expected: VmcpConfig = {
      name: 'vmcp',
      stateDir: '/srv/vmcp/.vmcp',
      registries: [],
      server: {
        host: '127.0.0.1',
        port: 4483,
        maxBodyBytes: 4 * 1024 * 1024,
        keepAliveTimeout: 5_000,
        allowedOrigins: [],
        trustedProxies: [],
        forwardedHeader: 'x-forwarded-for',
      },
      backends: [],
      incomingAuth: { type: 'anonymous' },
      outgoingAuth: { default: { type: 'unauthenticated' }, backends: {} },
      aggregation: {
        conflictResolution: 'prefix',
        prefixFormat: '{backend}_',
        prefixMode: 'always',
        priorityOrder: [],
        tools: [],
        prompts: [],
      },
      operational: {
        sessionTtl: 1_800_000,
        discoveryTimeout: 10_000,
        callTimeout: 60_000,
        healthCheckInterval: 15_000,
        healthCheckTimeout: 5_000,
        unhealthyThreshold: 3,
        shutdownTimeout: 10_000,
        maxSessions: 10_000,
        logLevel: 'info',
      },
    }
    expect(parse('')).toEqual(expected)
    expect(parse('{}')).toEqual(expected)
    expect(parse('# only a comment\n')).toEqual(expected)
  })

  it('stdio backends get no args, no extra env and the config directory as cwd', () => {
    expect(parse(stdio).backends[0]).toEqual({
      name: 'notes',
      transport: 'stdio',
      command: 'node',
      args: [],
      env: {},
      cwd: BASE,
    })
  })

  it('a relative stdio cwd resolves against the config directory, not process.cwd()', () => {
    const config = parse(
      'backends:\n  - { name: n, transport: stdio, command: node, cwd: ../backends }\n',
    )
    expect(config.backends[0]).toMatchObject({ cwd: '/srv/backends' })
  })

  it('http backends get no static headers', () => {
    const config = parse(
      'backends:\n  - { name: w, transport: streamable-http, url: http://127.0.0.1:4490/mcp }\n',
    )
    expect(config.backends[0]).toEqual({
      name: 'w',
      transport: 'streamable-http',
      url: 'http://127.0.0.1:4490/mcp',
      headers: {},
    })
  })

  it('oidc gets the asymmetric algorithm set, 30s clock skew and no scopes', () => {
    const config = parse(
      [
        'incomingAuth:',
        '  type: oidc',
        '  oidc:',
        '    issuer: https://idp.example.com',
        '    audience: vmcp',
        '    resource: https://v.example.com/mcp',
      ].join('\n'),
    )
    expect(config.incomingAuth).toEqual({
      type: 'oidc',
      oidc: {
        issuer: 'https://idp.example.com',
        audience: 'vmcp',
        resource: 'https://v.example.com/mcp',
        scopes: [],
        requiredScopes: [],
        algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
        clockSkew: 30_000,
      },
    })
  })

  it('token exchange defaults to the access-token subject type and no scopes', () => {
    const config = parse(
      [
        stdio,
        'outgoingAuth:',
        '  backends:',
        '    notes:',
        '      type: token_exchange',
        '      tokenExchange:',
        '        tokenUrl: https://idp.example.com/token',
        '        clientId: vmcp',
        '        clientSecret: { env: SECRET }',
      ].join('\n'),
      { SECRET: 's' },
    )
    expect(config.outgoingAuth.backends.notes).toMatchObject({
      tokenExchange: {
        scopes: [],
        subjectTokenType: 'urn:ietf:params:oauth:token-type:access_token',
      },
    })
  })

  it('a tools entry filters nothing, excludes nothing and overrides nothing', () => {
    const config = parse(`${stdio}aggregation:\n  tools:\n    - backend: notes\n`)
    expect(config.aggregation.tools).toEqual([
      { backend: 'notes', filter: [], exclude: [], overrides: {} },
    ])
  })
})

describe('registries', () => {
  const corp = (extra = '') =>
    `registries:\n  - name: corp\n    url: https://registry.corp.example\n${extra}`
  const auth = `    auth:\n      type: oauth\n      issuer: https://login.corp.example\n      clientId: vmcp-registry\n`

  it('a registry gets every server, a 5m refresh and no auth by default', () => {
    expect(parse(corp()).registries).toEqual([
      { name: 'corp', url: 'https://registry.corp.example', include: [], refreshInterval: 300_000 },
    ])
    expect(parse(corp(auth)).registries[0]?.auth).toEqual({
      type: 'oauth',
      issuer: 'https://login.corp.example',
      clientId: 'vmcp-registry',
      scopes: [],
    })
  })

  it('a public client only: a clientSecret is an unknown key', () => {
    expect(issueLines(() => parse(corp(`${auth}      clientSecret: { env: S }\n`)))).toEqual([
      '- registries[0].auth.clientSecret: unknown key',
    ])
  })

  it('the registry and its issuer must be https (or loopback http)', () => {
    expect(
      issueLines(() =>
        parse(
          'registries:\n  - name: corp\n    url: http://registry.corp.example\n    auth:\n      type: oauth\n      issuer: http://login.corp.example\n      clientId: c\n',
        ),
      ),
    ).toEqual([
      '- registries[0].url: must use https (http is allowed only for loopback hosts)',
      '- registries[0].auth.issuer: must use https (http is allowed only for loopback hosts)',
    ])
    expect(parse('registries:\n  - { name: dev, url: "http://127.0.0.1:9000" }\n').registries[0]?.url).toBe(
      'http://127.0.0.1:9000',
    )
  })

  it('registry names are unique and auth types are known', () => {
    expect(issueLines(() => parse(`${corp()}  - { name: corp, url: "https://other.example" }\n`))).toEqual([
      '- registries[1].name: duplicate registry name "corp"',
    ])
    expect(issueLines(() => parse(corp('    auth: { type: basic }\n')))).toEqual([
      '- registries[0].auth.type: must be one of: oauth',
    ])
  })

  it('stateDir resolves beside the file and is the default dataDir of the auth server', () => {
    expect(parse('stateDir: state\n').stateDir).toBe('/srv/vmcp/state')
    const file = new URL('../../../fixtures/configs/valid/mode-b.yaml', import.meta.url).pathname
    const { config } = loadConfigFile(file)
    expect(config.authServer?.runConfig.dataDir).toBe(join(file, '..', '.vmcp'))
    expect(config.stateDir).toBe(join(file, '..', '.vmcp'))
  })
})

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1d', 86_400_000],
    ['1m30s500ms', 90_500],
    ['0s', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each(['', '30', '1.5h', '-1s', 'ms', '1 h', '1H', '30sec'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined()
  })

  it('config durations become milliseconds', () => {
    const config = parse('operational:\n  sessionTtl: 1h30m\n  callTimeout: 250ms\n')
    expect(config.operational.sessionTtl).toBe(5_400_000)
    expect(config.operational.callTimeout).toBe(250)
  })

  it('a number is not a duration: the unit must be explicit', () => {
    expect(issueLines(() => parse('operational:\n  callTimeout: 30\n'))).toEqual([
      '- operational.callTimeout: must be a string',
    ])
  })
})

describe('secret refs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcp-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const headerSecret = (ref: string) =>
    [
      stdio,
      'outgoingAuth:',
      '  backends:',
      '    notes:',
      '      type: header_injection',
      `      headerInjection: { headerName: X-API-Key, value: ${ref} }`,
    ].join('\n')

  const secretOf = (config: VmcpConfig): Secret => {
    const s = config.outgoingAuth.backends.notes
    if (s?.type !== 'header_injection') throw new Error('expected header_injection')
    return s.headerInjection.headers['X-API-Key'] as Secret
  }

  it('{ env } reads the given environment, not process.env', () => {
    const config = parse(headerSecret('{ env: VMCP_UNIT_KEY }'), { VMCP_UNIT_KEY: 'from-env-123' })
    expect(secretOf(config).reveal()).toBe('from-env-123')
  })

  it('server.requestStateKey is a secret ref of at least 32 bytes, never a bare value', () => {
    const keyed = (ref: string) => [stdio, 'server:', `  requestStateKey: ${ref}`].join('\n')
    const long = 'k'.repeat(32)
    expect(parse(keyed('{ env: RSK }'), { RSK: long }).server.requestStateKey?.reveal()).toBe(long)
    expect(issueLines(() => parse(keyed('{ env: RSK }'), { RSK: 'short' }))).toEqual([
      '- server.requestStateKey: must be at least 32 bytes (e.g. openssl rand -base64 32)',
    ])
    expect(issueLines(() => parse(keyed(long)))).toEqual([
      '- server.requestStateKey: must be a secret ref: { env: NAME } or { file: PATH } (bare values are not allowed)',
    ])
  })

  it('an empty environment variable counts as not set', () => {
    expect(issueLines(() => parse(headerSecret('{ env: K }'), { K: '' }))).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.value: environment variable K is not set',
    ])
  })

  it('{ file } is relative to the config directory and loses one trailing newline', () => {
    writeFileSync(join(dir, 'key'), 'from-file-456\n')
    writeFileSync(join(dir, 'crlf'), 'crlf-789\r\n')
    writeFileSync(join(dir, 'two'), 'two-newlines\n\n')
    const at = (ref: string) =>
      secretOf(parseConfigText(headerSecret(ref), { baseDir: dir, env: {} })).reveal()
    expect(at('{ file: key }')).toBe('from-file-456')
    expect(at('{ file: ./key }')).toBe('from-file-456')
    expect(at(`{ file: ${join(dir, 'key')} }`)).toBe('from-file-456')
    expect(at('{ file: crlf }')).toBe('crlf-789')
    // Only the newline an editor adds is trimmed; anything else is part of the secret.
    expect(at('{ file: two }')).toBe('two-newlines\n')
  })

  it('loadConfigFile resolves { file } against the file, wherever the process runs', () => {
    writeFileSync(join(dir, 'secret'), 'beside-the-config\n')
    writeFileSync(join(dir, 'vmcp.yaml'), headerSecret('{ file: secret }'))
    const { config, path } = loadConfigFile(join(dir, 'vmcp.yaml'), { env: {} })
    expect(path).toBe(join(dir, 'vmcp.yaml'))
    expect(secretOf(config).reveal()).toBe('beside-the-config')
  })

  it('the value never prints: JSON, inspect and String show [REDACTED]', () => {
    const config = parse(headerSecret('{ env: K }'), { K: 'sk-live-very-secret' })
    const json = JSON.stringify(config)
    expect(json).toContain('"X-API-Key":"[REDACTED]"')
    expect(json).not.toContain('sk-live-very-secret')
    expect(inspect(config, { depth: 10 })).not.toContain('sk-live-very-secret')
    expect(String(secretOf(config))).toBe('[REDACTED]')
  })

  it('a bare string is refused without echoing it back', () => {
    const lines = issueLines(() => parse(headerSecret('sk-live-committed-by-mistake')))
    expect(lines).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.value: must be a secret ref: { env: NAME } or { file: PATH } (bare values are not allowed)',
    ])
    expect(lines.join('\n')).not.toContain('sk-live-committed-by-mistake')
  })

  it('a ref with both env and file is refused', () => {
    expect(issueLines(() => parse(headerSecret('{ env: K, file: f }'), { K: 'v' }))).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.value.file: unknown key',
    ])
  })
})

describe('header secrets', () => {
  const http = (headers: string) =>
    `backends:\n  - { name: dd, transport: streamable-http, url: https://dd.example.com/mcp, headers: ${headers} }\n`
  const backendHeaders = (config: VmcpConfig) => {
    const b = config.backends[0]
    if (b?.transport === 'stdio' || !b) throw new Error('expected an HTTP backend')
    return Object.fromEntries(Object.entries(b.headers).map(([k, v]) => [k, v.reveal()]))
  }
  const injection = (block: string) =>
    [stdio, 'outgoingAuth:', '  backends:', '    notes:', '      type: header_injection', `      headerInjection: ${block}`].join('\n')

  it('backends[].headers values are plain strings or secret refs, with an optional prefix', () => {
    const config = parse(
      http("{ X-Plain: v1, DD-API-KEY: { env: A }, Authorization: { env: T, prefix: 'Bearer ' } }"),
      { A: 'api-1', T: 'tok-2' },
    )
    expect(backendHeaders(config)).toEqual({ 'X-Plain': 'v1', 'DD-API-KEY': 'api-1', Authorization: 'Bearer tok-2' })
    // Every value, plain or secret, is a Secret: none of them prints.
    expect(JSON.stringify(config.backends)).not.toMatch(/api-1|tok-2|v1/)
  })

  it('an unset variable in backends[].headers is named at its header', () => {
    expect(issueLines(() => parse(http('{ DD-API-KEY: { env: A } }')))).toEqual([
      '- backends[0].headers.DD-API-KEY: environment variable A is not set',
    ])
  })

  it('a header name that is not an RFC 9110 token is refused', () => {
    expect(issueLines(() => parse(http("{ 'Bad Name': v }")))).toEqual([
      '- backends[0].headers.Bad Name: must be an HTTP header name',
    ])
  })

  it('an unset variable in launch/stdio env is named too (not "must be a string")', () => {
    const text = 'backends:\n  - { name: n, transport: stdio, command: node, env: { KEY: { env: UNSET_X } } }\n'
    expect(issueLines(() => parse(text))).toEqual(['- backends[0].env.KEY: environment variable UNSET_X is not set'])
  })

  it('header_injection takes several headers, each a secret ref', () => {
    const config = parse(injection("{ headers: { DD-API-KEY: { env: A }, DD-APPLICATION-KEY: { file: /dev/null, prefix: 'p-' } } }"), { A: 'a1' })
    const s = config.outgoingAuth.backends.notes
    if (s?.type !== 'header_injection') throw new Error('expected header_injection')
    expect(Object.fromEntries(Object.entries(s.headerInjection.headers).map(([k, v]) => [k, v.reveal()]))).toEqual({
      'DD-API-KEY': 'a1',
      'DD-APPLICATION-KEY': 'p-',
    })
  })

  it('header_injection headers must be secret refs: a bare value is refused without echoing it', () => {
    const lines = issueLines(() => parse(injection('{ headers: { X-Key: sk-live-in-clear } }')))
    expect(lines).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.headers.X-Key: must be a secret ref: { env: NAME } or { file: PATH } (bare values are not allowed)',
    ])
  })

  it('header_injection: one form or the other, and something to send', () => {
    expect(issueLines(() => parse(injection('{ headerName: X-K, value: { env: A }, headers: { X-L: { env: A } } }'), { A: 'a' }))).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.headers: use either headerName/value or headers, not both',
    ])
    expect(issueLines(() => parse(injection('{ headers: {} }')))).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.headers: must name at least one header',
    ])
    expect(issueLines(() => parse(injection('{}')))).toEqual([
      '- outgoingAuth.backends.notes.headerInjection.headerName: is required (or give headers: { Name: { env: VAR } })',
      '- outgoingAuth.backends.notes.headerInjection.value: is required',
    ])
  })
})

describe('errors', () => {
  it('server.trustedProxies: every entry must be a CIDR or an address, named by its path', () => {
    const text = 'server: { trustedProxies: [10.0.0.0/8, not-a-cidr, 10.0.0.0/33] }'
    expect(issueLines(() => parse(text))).toEqual([
      '- server.trustedProxies[1]: must be a CIDR such as 10.0.0.0/8 or an IP address',
      '- server.trustedProxies[2]: must be a CIDR such as 10.0.0.0/8 or an IP address',
    ])
    const ok = 'server: { trustedProxies: [10.0.0.0/8, "::1"], forwardedHeader: forwarded }'
    expect(parse(ok).server).toMatchObject({
      trustedProxies: ['10.0.0.0/8', '::1'],
      forwardedHeader: 'forwarded',
    })
  })

  it('reports every schema problem at once, in file order, with YAML paths', () => {
    const text = [
      'nmae: typo',
      'server: { port: -1, host: 127.0.0.1, extra: true }',
      'backends:',
      '  - { name: a, transport: stdio }',
      '  - { name: b, transport: streamable-http, url: http://example.com/mcp }',
      'incomingAuth: { type: oidc }',
      'aggregation: { prefixMode: sometimes }',
      'operational: { shutdownTimeout: soon, maxSessions: 0 }',
    ].join('\n')
    expect(issueLines(() => parse(text))).toEqual([
      '- server.port: must be at least 0',
      '- server.extra: unknown key',
      '- backends[0].command: is required',
      '- backends[1].url: must use https (http is allowed only for loopback hosts)',
      '- incomingAuth.oidc: is required',
      '- aggregation.prefixMode: must be one of: always, on-conflict',
      '- operational.shutdownTimeout: must be a duration such as 500ms, 30s, 5m or 1h',
      '- operational.maxSessions: must be at least 1',
      '- nmae: unknown key; did you mean "name"?',
    ])
  })

  it('reads server.keepAliveTimeout as a duration, and names its path when it is not one', () => {
    expect(parse('server: { keepAliveTimeout: 90s }').server.keepAliveTimeout).toBe(90_000)
    expect(issueLines(() => parse('server: { keepAliveTimeout: forever }'))).toEqual([
      '- server.keepAliveTimeout: must be a duration such as 500ms, 30s, 5m or 1h',
    ])
  })

  it('reports every cross-field problem at once', () => {
    const text = [
      'backends:',
      '  - { name: a, transport: stdio, command: x }',
      '  - { name: a, transport: stdio, command: y }',
      'outgoingAuth: { backends: { ghost: { type: unauthenticated } } }',
      'aggregation: { conflictResolution: priority, tools: [{ backend: nope }] }',
      'operational: { healthCheckInterval: 1s, healthCheckTimeout: 2s }',
    ].join('\n')
    expect(issueLines(() => parse(text))).toEqual([
      '- backends[1].name: duplicate backend name "a"',
      '- outgoingAuth.backends.ghost: no backend named "ghost" (known: a)',
      '- aggregation.priorityOrder: is required when conflictResolution is priority',
      '- aggregation.tools[0].backend: no backend named "nope" (known: a)',
      '- operational.healthCheckTimeout: must be shorter than operational.healthCheckInterval',
    ])
  })

  it('schema and cross-field problems arrive in one round, the cross-field ones from the valid sections', () => {
    const text = [
      'sever: { port: 1 }',
      'backends:',
      '  - { name: github, transport: stdio, comand: node }',
      '  - { name: github, transport: stdio, command: node }',
      '  - { name: notes, transport: stdi0, command: node }',
      'outgoingAuth: { backends: { gihtub: { type: unauthenticated } } }',
      'aggregation: { priorityOrder: [nots], conflictResolution: priority }',
    ].join('\n')
    expect(issueLines(() => parse(text))).toEqual([
      '- backends[0].command: is required',
      '- backends[0].comand: unknown key; did you mean "command"?',
      '- backends[2].transport: must be one of: streamable-http, sse, stdio; did you mean "stdio"?',
      '- sever: unknown key; did you mean "server"?',
      '- backends[1].name: duplicate backend name "github"',
      '- outgoingAuth.backends.gihtub: no backend named "gihtub" (known: github, notes); did you mean "github"?',
      '- aggregation.priorityOrder[0]: no backend named "nots" (known: github, notes); did you mean "notes"?',
    ])
  })

  it('a broken section skips only the rules that read it', () => {
    // authServer is invalid: whether upstream_inject has its authorization server is unknown, so
    // only authServer's own error is reported, not "authServer is not configured".
    const text = [
      'backends: [{ name: a, transport: stdio, command: x }]',
      'outgoingAuth: { default: { type: upstream_inject, upstreamInject: { providerName: idp } } }',
      'authServer: { runConfig: { isuer: nope } }',
    ].join('\n')
    const lines = issueLines(() => parse(text))
    expect(lines.filter((l) => l.startsWith('- outgoingAuth'))).toEqual([])
    expect(lines).toContain('- authServer.runConfig.isuer: unknown key; did you mean "issuer"?')
  })

  it('suggests only near misses, and never the key itself', () => {
    expect(issueLines(() => parse('completelyunrelated: 1'))).toEqual(['- completelyunrelated: unknown key'])
    expect(issueLines(() => parse('server: { prot: 1 }'))).toEqual(['- server.prot: unknown key; did you mean "port"?'])
  })

  it('aggregation.prompts is checked like aggregation.tools', () => {
    const text = [
      'backends: [{ name: a, transport: stdio, command: x }]',
      'aggregation:',
      '  prompts:',
      '    - { backend: nope }',
      '    - { backend: a, overrides: { greet: {} } }',
      '    - { backend: a, overrides: { greet: { name: hello } } }',
    ].join('\n')
    expect(issueLines(() => parse(text))).toEqual([
      '- aggregation.prompts[0].backend: no backend named "nope" (known: a)',
      '- aggregation.prompts[1].overrides.greet: needs at least one of name, title, description',
      '- aggregation.prompts[2].backend: "a" is configured twice; merge the entries',
    ])
    expect(issueLines(() => parse('aggregation: { prompts: [{ backend: a, overrides: { g: { annotations: {} } } }] }'))).toEqual([
      '- aggregation.prompts[0].overrides.g.annotations: unknown key',
    ])
  })

  it('YAML errors carry line and column', () => {
    expect(issueLines(() => parse('server:\n  port: 1\n  port: 2\n'))).toEqual([
      '- (yaml): line 3, column 3: Map keys must be unique',
    ])
  })

  it('a document that is not a mapping is reported at the root', () => {
    expect(issueLines(() => parse('- just\n- a list\n'))).toEqual(['- (root): must be an object'])
  })

  it('an unreadable file is a ConfigError, not a crash', () => {
    expect(issueLines(() => loadConfigFile('/nonexistent/vmcp.yaml', { env: {} }))).toEqual([
      '- (file): cannot read /nonexistent/vmcp.yaml (ENOENT)',
    ])
  })
})

describe('warnings of a valid configuration', () => {
  it('no backends and no registries: valid, with a warning that clients will see no tools', async () => {
    const { configWarnings } = await import('../../../src/config/index.js')
    expect(configWarnings(parse(''))).toEqual([
      { path: 'backends', message: expect.stringContaining('no backends and no registries: clients will see no tools') },
    ])
    expect(configWarnings(parse('registries: [{ name: corp, url: https://registry.example.com }]'))).toEqual([])
  })
})

describe('Mode B warnings (V-03 and memory storage)', () => {
  it('warns when token_exchange is used while vmcp is its own issuer, naming the subject token', async () => {
    const { configWarnings, loadConfigFile } = await import('../../../src/config/index.js')
    const { config } = loadConfigFile(new URL('../../../fixtures/configs/valid/mode-b.yaml', import.meta.url).pathname)
    config.outgoingAuth.backends.github = {
      type: 'token_exchange',
      tokenExchange: {
        tokenUrl: 'https://sso.example.com/token',
        clientId: 'x',
        clientSecret: config.outgoingAuth.default as never,
        scopes: [],
        subjectTokenType: 'urn:ietf:params:oauth:token-type:access_token',
      },
    }
    const warnings = configWarnings(config)
    expect(warnings).toContainEqual({
      path: 'outgoingAuth.backends.github',
      message: expect.stringContaining("the subject token is vmcp's own JWT (issuer https://vmcp.example.com)"),
    })
    expect(warnings.map((w) => w.path)).toContain('authServer.runConfig.storage.type')
  })

  it('token_exchange.subjectProviderName: must name an upstream, and silences V-03', async () => {
    const { configWarnings, validateConfig } = await import('../../../src/config/index.js')
    const file = new URL('../../../fixtures/configs/valid/mode-b.yaml', import.meta.url).pathname
    const { parse } = await import('yaml')
    const { readFileSync } = await import('node:fs')
    const raw = parse(readFileSync(file, 'utf8')) as { outgoingAuth: { backends: Record<string, unknown> } }
    const exchange = (subjectProviderName: string) => ({
      type: 'token_exchange',
      tokenExchange: { tokenUrl: 'https://sso.example.com/token', clientId: 'x', clientSecret: { env: 'X' }, subjectProviderName },
    })
    raw.outgoingAuth.backends.github = exchange('corp')
    const config = validateConfig(raw, { baseDir: '/', env: { X: 'y' } })
    expect(configWarnings(config).map((w) => w.path)).not.toContain('outgoingAuth.backends.github')
    raw.outgoingAuth.backends.github = exchange('gitlab')
    expect(issueLines(() => validateConfig(raw, { baseDir: '/', env: { X: 'y' } }))).toEqual([
      '- outgoingAuth.backends.github.tokenExchange.subjectProviderName: "gitlab" is not an upstream of authServer.runConfig (known: corp, github)',
    ])
  })

  it('warns when an oauth2 upstream asks for openid', async () => {
    const { configWarnings, loadConfigFile } = await import('../../../src/config/index.js')
    const { config } = loadConfigFile(new URL('../../../fixtures/configs/valid/mode-b.yaml', import.meta.url).pathname)
    const up = config.authServer?.runConfig.upstreams[1]
    if (up?.type !== 'oauth2') throw new Error('fixture changed')
    expect(configWarnings(config).map((w) => w.path)).not.toContain('authServer.runConfig.upstreams[1].oauth2.scopes')
    up.oauth2.scopes = ['openid', 'repo']
    expect(configWarnings(config)).toContainEqual({
      path: 'authServer.runConfig.upstreams[1].oauth2.scopes',
      message: expect.stringContaining('use type: oidc'),
    })
  })

  it('gives no warnings in Mode A', async () => {
    const { configWarnings, loadConfigFile } = await import('../../../src/config/index.js')
    const { config } = loadConfigFile(
      new URL('../../../fixtures/configs/valid/mode-a-oidc.yaml', import.meta.url).pathname,
      { env: { VMCP_TEST_INTROSPECTION_SECRET: 'x' } },
    )
    expect(configWarnings(config)).toEqual([])
  })

  it('warns in Mode A when the audience is not the resource URL and when introspection may skip aud', async () => {
    const { configWarnings, loadConfigFile } = await import('../../../src/config/index.js')
    const { config } = loadConfigFile(
      new URL('../../../fixtures/configs/valid/mode-a-lenient.yaml', import.meta.url).pathname,
    )
    expect(configWarnings(config)).toEqual([
      {
        path: 'incomingAuth.oidc.audience',
        message: expect.stringContaining('"vmcp" is not the resource URL (https://vmcp.example.com/mcp)'),
      },
      {
        path: 'incomingAuth.oidc.introspection.requireAudience',
        message: expect.stringContaining('without an aud claim is accepted'),
      },
    ])
  })
})

describe('authServer.runConfig.consent', () => {
  const modeB = (consent: string) =>
    parse(
      `${stdio}incomingAuth:\n  type: oidc\n  oidc: { issuer: https://vmcp.example.com, audience: https://vmcp.example.com/mcp, resource: https://vmcp.example.com/mcp }\n` +
        `authServer:\n  runConfig:\n    issuer: https://vmcp.example.com\n` +
        `    allowedAudiences: [https://vmcp.example.com/mcp]\n` +
        `    upstreams: [{ name: corp, type: oidc, oidc: { issuerUrl: https://sso.example.com, clientId: vmcp } }]\n` +
        consent,
    )

  it('defaults: approvals remembered 30 days, no trusted clients', () => {
    expect(modeB('').authServer?.runConfig.consent).toEqual({ rememberFor: 30 * 86_400_000, trustedClients: [] })
  })

  it('takes a duration and first-party client ids', () => {
    const config = modeB('    consent: { rememberFor: 0s, trustedClients: [Ab3_first-party] }\n')
    expect(config.authServer?.runConfig.consent).toEqual({ rememberFor: 0, trustedClients: ['Ab3_first-party'] })
  })

  it('refuses a CIMD URL as a trusted client, and a remember time over a year', () => {
    const lines = issueLines(() =>
      modeB('    consent: { rememberFor: 400d, trustedClients: [ok, "https://tools.example/client.json"] }\n'),
    )
    expect(lines).toEqual([
      '- authServer.runConfig.consent.rememberFor: must be between 0s and 365d',
      '- authServer.runConfig.consent.trustedClients[1]: must be a registered client id, not a URL (CIMD clients are never trusted)',
    ])
  })

  it('registration.privateUseSchemes: none by default; refuses schemes browsers run or read files with', () => {
    expect(modeB('').authServer?.runConfig.registration).toEqual({ privateUseSchemes: [] })
    expect(modeB('    registration: { privateUseSchemes: [cursor] }\n').authServer?.runConfig.registration).toEqual({
      privateUseSchemes: ['cursor'],
    })
    const lines = issueLines(() => modeB('    registration: { privateUseSchemes: [cursor, javascript, "Cursor:"] }\n'))
    expect(lines).toEqual([
      '- authServer.runConfig.registration.privateUseSchemes[1]: is not a private-use scheme a native app can own',
      '- authServer.runConfig.registration.privateUseSchemes[2]: must be a lower-case URI scheme name without ":"',
    ])
  })
})
