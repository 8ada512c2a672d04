import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { freePort } from '../support/http.js'
import { PROCESS_WAIT_MS, spawnVmcp, VMCP_CLI, VMCP_ROOT, type VmcpProcess } from '../support/vmcp.js'
import { EVENTUALLY } from '../support/wait.js'

// The CLI as users run it: the built file, in a child process, from the repository root.
const ROOT = VMCP_ROOT
const CLI = VMCP_CLI
const VALID = 'fixtures/configs/valid/minimal.yaml'
const INVALID = 'fixtures/configs/invalid/bad-port.yaml'
const WAIT_MS = PROCESS_WAIT_MS

interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function run(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    // Without the Mode B demo's secret, whatever the calling shell exports.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DEV_IDP_CLIENT_SECRET'))
    const options = { cwd: ROOT, timeout: WAIT_MS, env }
    execFile(process.execPath, [CLI, ...args], options, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
      })
    })
  })
}

let served: VmcpProcess | undefined

function serve(args: string[]): VmcpProcess {
  served = spawnVmcp(args)
  return served
}

const exitWithin = (s: VmcpProcess) => s.exitWithin()

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm test does)`)
})

afterEach(async () => {
  await served?.kill()
  served = undefined
})

describe('vmcp one-shot commands', () => {
  it('--version prints the package version and exits 0', async () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }
    const r = await run(['--version'])
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
  })

  it('--help exits 0 and lists the commands', async () => {
    const r = await run(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('vmcp serve --config <file>')
    expect(r.stdout).toContain('vmcp validate --config <file>')
  })

  it('no arguments is a usage error: exit 2', async () => {
    const r = await run([])
    expect(r.code).toBe(2)
    expect(r.stdout).toContain('Usage:')
  })

  it('an unknown command is a usage error: exit 2', async () => {
    const r = await run(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^vmcp: unknown command "frobnicate"\n/)
  })

  it('validate accepts a valid file: exit 0', async () => {
    const r = await run(['validate', '--config', VALID])
    expect(r).toMatchObject({
      code: 0,
      stdout: 'configuration is valid: 1 backend(s), incoming auth anonymous\n',
    })
  })

  it('validate prints configuration warnings on stderr and still exits 0', async () => {
    const r = await run(['validate', '--config', 'fixtures/configs/valid/mode-a-lenient.yaml'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('configuration is valid: 1 backend(s), incoming auth oidc\n')
    const warnings = r.stderr.split('\n').filter(Boolean)
    expect(warnings.map((w) => w.slice(0, w.indexOf(': ', 'warning: '.length)))).toEqual([
      'warning: incomingAuth.oidc.audience',
      'warning: incomingAuth.oidc.introspection.requireAudience',
    ])
  })

  it('validate rejects an invalid file: exit 2, one "- path: message" line per issue', async () => {
    const r = await run(['validate', '--config', INVALID])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe('invalid configuration:\n- server.port: must be at most 65535\n')
  })

  it('serve --log-level nope is a usage error: exit 2', async () => {
    const r = await run(['serve', '--config', VALID, '--port', '0', '--log-level', 'nope'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^vmcp: --log-level must be one of fatal, error, warn, info, debug/)
  })

  it('validate of the Mode B example without its env var hints at npm run demo:mode-b', async () => {
    const r = await run(['validate', '--config', 'vmcp.modeb.example.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('environment variable DEV_IDP_CLIENT_SECRET is not set')
    expect(r.stderr).toContain('hint: export the variables above; for vmcp.modeb.example.yaml, `npm run demo:mode-b`')
  })

  it('usage errors are one clean line and a pointer to --help, with a suggestion for a near miss', async () => {
    const cases: Array<[string[], string]> = [
      [['validate', '--confg', VALID], 'vmcp: unknown option --confg; did you mean "--config"?'],
      [['validate', '--config'], 'vmcp: --config needs a value'],
      [['serve', '--config', VALID, '--watch=yes'], 'vmcp: --watch takes no value'],
      [['serv', '--config', VALID], 'vmcp: unknown command "serv"; did you mean "serve"?'],
    ]
    for (const [args, line] of cases) {
      const r = await run(args)
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `${line}\nRun 'vmcp --help' for usage.\n`,
      })
    }
  })

  it('validate reports schema and cross-field errors of a file in one round', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-cli-'))
    const file = join(dir, 'vmcp.yaml')
    writeFileSync(
      file,
      [
        'sever: { port: 1 }',
        'backends:',
        '  - { name: notes, transport: stdio, comand: node }',
        '  - { name: notes, transport: stdio, command: node }',
        'outgoingAuth: { backends: { ntoes: { type: unauthenticated } } }',
      ].join('\n'),
    )
    const r = await run(['validate', '--config', file])
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      'invalid configuration:',
      '- backends[0].command: is required',
      '- backends[0].comand: unknown key; did you mean "command"?',
      '- sever: unknown key; did you mean "server"?',
      '- backends[1].name: duplicate backend name "notes"',
      '- outgoingAuth.backends.ntoes: no backend named "ntoes" (known: notes); did you mean "notes"?',
    ])
  })

  it('validate of a file without backends or registries warns that clients will see no tools', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-cli-'))
    const file = join(dir, 'vmcp.yaml')
    writeFileSync(file, 'name: empty\n')
    const r = await run(['validate', '--config', file])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/^warning: backends: no backends and no registries: clients will see no tools/)
  })

  it('validate without --config is a usage error: exit 2', async () => {
    const r = await run(['validate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^vmcp: --config is required\n/)
  })

})

describe('vmcp serve', () => {
  it('serve with an invalid configuration exits 2 before listening', async () => {
    const s = serve(['--config', 'fixtures/configs/invalid/unknown-top-level-key.yaml'])
    // It exits on its own (no signal), so nothing can be left listening.
    expect(await exitWithin(s)).toEqual({ code: 2, signal: null })
    expect(s.lines.map((l) => l.msg)).not.toContain('ready')
  })

  it('serve --port 0 starts, answers /health and stops cleanly on SIGTERM', async () => {
    const s = serve(['--config', VALID, '--port', '0'])
    const ready = await s.waitFor('ready')
    expect(ready).toMatchObject({ backends: 1, auth: 'anonymous' })
    const url = new URL(String(ready.url))
    expect(url.hostname).toBe('127.0.0.1')
    expect(url.port).not.toBe('0')
    expect(url.pathname).toBe('/mcp')
    // The next step is on the ready line: how to add vmcp to a client, and where /status is.
    expect(ready.connect).toBe(`claude mcp add --transport http vmcp ${url.href}`)
    expect(ready.status).toBe(new URL('/status', url).href)

    const health = await fetch(new URL('/health', url))
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })

    s.child.kill('SIGTERM')
    expect(await exitWithin(s)).toEqual({ code: 0, signal: null })
    const msgs = s.lines.map((l) => l.msg)
    expect(msgs).toContain('shutting down')
    expect(msgs.at(-1)).toBe('stopped')
  })
})

describe('vmcp serve: signals and children', () => {
  const configFile = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-cli-'))
    const file = join(dir, 'vmcp.yaml')
    writeFileSync(file, text)
    return file
  }

  it('SIGTERM during startup stops the launched process, exits 0 and never logs ready', async () => {
    const port = await freePort()
    // A launched backend that never listens: discovery would wait the whole (long) timeout.
    const file = configFile(
      [
        'backends:',
        '  - name: silent',
        '    transport: streamable-http',
        `    url: http://127.0.0.1:${port}/mcp`,
        `    launch: { command: ${JSON.stringify(process.execPath)}, args: ['-e', 'setInterval(() => {}, 1000)'] }`,
        'operational: { discoveryTimeout: 5m }',
      ].join('\n'),
    )
    const s = serve(['--config', file, '--port', '0'])
    const launched = await s.waitFor('launched backend process')
    s.child.kill('SIGTERM')
    expect(await exitWithin(s)).toEqual({ code: 0, signal: null })
    const msgs = s.lines.map((l) => l.msg)
    expect(msgs).toContain('shutting down')
    expect(msgs).not.toContain('ready')
    expect(() => process.kill(launched.pid as number, 0)).toThrow()
  })

  // A stdio backend that ignores both stdin EOF and SIGTERM: closing it takes the SDK 4 s.
  // 2025: the notes demo (v1 SDK); 2026-07-28: the modern stdio fixture (v2 SDK serveStdio);
  // silent: one that never answers, so vmcp is still probing it.
  const FIXTURE = {
    '2025': 'demo-notes-stdio.mjs',
    '2026-07-28': 'modern-stdio.mjs',
    silent: undefined,
  } as const
  const stubbornBackend = (era: keyof typeof FIXTURE = '2025') => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcp-stubborn-'))
    const pidFile = join(dir, 'pid')
    const script = join(dir, 'stubborn.mjs')
    const fixture = FIXTURE[era]
    const server = fixture && new URL(`../../fixtures/backends/${fixture}`, import.meta.url).href
    writeFileSync(
      script,
      [
        "import { writeFileSync } from 'node:fs'",
        server ? `await import(${JSON.stringify(server)})` : '',
        "process.removeAllListeners('SIGTERM')",
        "process.on('SIGTERM', () => {})",
        'setInterval(() => {}, 1000)',
        `writeFileSync(${JSON.stringify(pidFile)}, String(process.pid))`,
      ].join('\n'),
    )
    const config = configFile(
      `backends:\n  - { name: stubborn, transport: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(script)}] }\n`,
    )
    return { config, pidFile, pid: () => Number(readFileSync(pidFile, 'utf8')) }
  }
  const gone = (pid: number) => {
    try {
      process.kill(pid, 0)
      return false
    } catch {
      return true
    }
  }

  it.each(['2025', '2026-07-28'] as const)('shutdown has a hard deadline (shutdownTimeout + 1 s): a %s stdio backend that will not stop cannot hold vmcp, and is killed with it', async (era) => {
    const stubborn = stubbornBackend(era)
    writeFileSync(stubborn.config, `${readFileSync(stubborn.config, 'utf8')}operational: { shutdownTimeout: 1s }\n`)
    const s = serve(['--config', stubborn.config, '--port', '0'])
    await s.waitFor('ready')
    const pid = stubborn.pid()
    expect(gone(pid)).toBe(false)
    s.child.kill('SIGTERM')
    expect(await exitWithin(s)).toEqual({ code: 1, signal: null })
    expect(s.lines.map((l) => l.msg)).toContain('shutdown did not finish in time: exiting now')
    await vi.waitFor(() => expect(gone(pid)).toBe(true), EVENTUALLY)
  })

  it.each(['2025', '2026-07-28'] as const)('a second signal during shutdown exits at once and leaves no %s stdio child behind', async (era) => {
    const stubborn = stubbornBackend(era)
    writeFileSync(stubborn.config, `${readFileSync(stubborn.config, 'utf8')}operational: { shutdownTimeout: 5m }\n`)
    const s = serve(['--config', stubborn.config, '--port', '0'])
    await s.waitFor('ready')
    const pid = stubborn.pid()
    s.child.kill('SIGTERM')
    await s.waitFor('shutting down')
    s.child.kill('SIGINT')
    expect(await exitWithin(s)).toEqual({ code: 1, signal: null })
    expect(s.lines.map((l) => l.msg)).toContain('second signal: exiting now')
    await vi.waitFor(() => expect(gone(pid)).toBe(true), EVENTUALLY)
  })

  it('a stdio backend still being probed (it never answers) is tracked, and killed with vmcp', async () => {
    const stubborn = stubbornBackend('silent')
    writeFileSync(
      stubborn.config,
      `${readFileSync(stubborn.config, 'utf8')}operational: { shutdownTimeout: 1s, discoveryTimeout: 5m }\n`,
    )
    const s = serve(['--config', stubborn.config, '--port', '0'])
    await vi.waitFor(() => expect(existsSync(stubborn.pidFile)).toBe(true), EVENTUALLY)
    const pid = stubborn.pid()
    expect(gone(pid)).toBe(false)
    s.child.kill('SIGTERM')
    await exitWithin(s)
    await vi.waitFor(() => expect(gone(pid)).toBe(true), EVENTUALLY)
  })

  it('SIGHUP keeps vmcp running and re-checks the file, logging every error of an invalid one', async () => {
    const notes = `${ROOT}fixtures/backends/demo-notes-stdio.mjs`
    const file = configFile(`backends:\n  - { name: notes, transport: stdio, command: node, args: [${JSON.stringify(notes)}] }\n`)
    const s = serve(['--config', file, '--port', '0'])
    const ready = await s.waitFor('ready')
    writeFileSync(file, 'server: { port: 70000 }\nname: 7\n')
    s.child.kill('SIGHUP')
    const rejected = await s.waitFor('new configuration rejected: server.port: must be at most 65535')
    expect(rejected.level).toBe(50)
    expect(s.lines.map((l) => l.msg)).toContain('new configuration rejected: name: must be a string')
    const health = await fetch(new URL('/health', String(ready.url)))
    expect(health.status).toBe(200)
    s.child.kill('SIGTERM')
    expect(await exitWithin(s)).toEqual({ code: 0, signal: null })
  })
})
