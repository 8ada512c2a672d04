#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { ConfigError, configWarnings, didYouMean, loadConfigFile, type VmcpConfig } from '../config/index.js'
import { createLogger, type LogLevel } from '../log/index.js'
import { readVersion } from '../version.js'

// Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
const EXIT_RUNTIME = 1
const EXIT_CONFIG = 2
/** How long past `operational.shutdownTimeout` the CLI waits before it exits regardless. */
const HARD_EXIT_MARGIN_MS = 1000

const HELP = `vmcp ${readVersion()}: one MCP endpoint in front of many MCP servers

Usage:
  vmcp serve --config <file> [--watch] [--host <host>] [--port <port>] [--log-level <level>]
  vmcp validate --config <file>
  vmcp tools --config <file>
  vmcp dcr list --config <file>
  vmcp dcr forget --config <file> --upstream <name>
  vmcp registry login --config <file> --registry <name> [--no-browser]
  vmcp registry logout --config <file> --registry <name>
  vmcp registry status --config <file>
  vmcp registry set-auth --config <file> --registry <name> --issuer <url> --client-id <id> [--scopes a,b] [--audience <aud>]
  vmcp registry unset-auth --config <file> --registry <name>
  vmcp --version
  vmcp --help

Options:
  -c, --config <file>     vmcp YAML configuration
      --watch             serve: reload the configuration when the file changes (SIGHUP also reloads)
      --host <host>       listen address (overrides server.host)
      --port <port>       listen port (overrides server.port; 0 picks a free port)
      --log-level <level> fatal | error | warn | info | debug | trace (overrides operational.logLevel)
      --upstream <name>   dcr forget: the upstream whose cached registration to drop
      --registry <name>   registry login/logout: which of the configured registries
      --no-browser        registry login: print the authorization URL on stdout instead
      --issuer, --client-id, --scopes, --audience   registry set-auth: the OAuth sign-in to write

Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration.
Logs are JSON lines on stderr (human-readable on a terminal).`

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']

const COMMANDS = ['serve', 'validate', 'tools', 'dcr', 'registry']

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  host: { type: 'string' },
  port: { type: 'string' },
  'log-level': { type: 'string' },
  watch: { type: 'boolean' },
  upstream: { type: 'string' },
  registry: { type: 'string' },
  'no-browser': { type: 'boolean' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  scopes: { type: 'string' },
  audience: { type: 'string' },
  version: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const

function usage(message: string): never {
  process.stderr.write(`vmcp: ${message}\nRun 'vmcp --help' for usage.\n`)
  process.exit(EXIT_CONFIG)
}

/** node:util's parse errors, said the way the rest of the CLI speaks (no parser internals). */
function usageOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  const option = /'(?:-\w, )?(-{1,2}[^'\s=]+)/.exec(e.message)?.[1] ?? 'an option'
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    return `unknown option ${option}${didYouMean(option, Object.keys(OPTIONS).map((o) => `--${o}`))}`
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return /does not take an argument/.test(e.message) ? `${option} takes no value` : `${option} needs a value`
  }
  return e.message
}

function load(path: string | undefined): VmcpConfig {
  if (!path) usage('--config is required')
  try {
    return loadConfigFile(path).config
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      const unset = [...err.message.matchAll(/environment variable (\S+) is not set/g)].map((m) => m[1])
      if (unset.length > 0) {
        // The Mode B example's variable comes with the demo that sets it; any other file's are
        // the operator's to export.
        const how = /modeb\.example\.yaml$/.test(path)
          ? '; for vmcp.modeb.example.yaml, `npm run demo:mode-b` sets them and starts the development IdP'
          : `, e.g. export ${[...new Set(unset)].map((v) => `${v}=…`).join(' ')}`
        process.stderr.write(`hint: export the variables above${how}\n`)
      }
      process.exit(EXIT_CONFIG)
    }
    throw err
  }
}

async function main(argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS })
  } catch (err) {
    usage(usageOf(err))
  }
  const { values, positionals } = parsed
  if (values.version) {
    process.stdout.write(`${readVersion()}\n`)
    return
  }
  const command = positionals[0]
  if (values.help || !command) {
    process.stdout.write(`${HELP}\n`)
    if (!command && !values.help) process.exitCode = EXIT_CONFIG
    return
  }
  if (command === 'validate') {
    const config = load(values.config)
    for (const w of configWarnings(config)) process.stderr.write(`warning: ${w.path}: ${w.message}\n`)
    process.stdout.write(`configuration is valid: ${config.backends.length} backend(s), incoming auth ${config.incomingAuth.type}\n`)
    return
  }
  if (command === 'tools') {
    const config = load(values.config)
    const { runToolsCommand } = await import('./tools-command.js')
    process.exitCode = await runToolsCommand(
      config,
      (line) => process.stdout.write(`${line}\n`),
      (line) => process.stderr.write(`${line}\n`),
    )
    return
  }
  if (command === 'dcr') {
    // Cached RFC 7591 registrations of the upstreams (never a secret on screen).
    const config = load(values.config)
    const { runDcrCommand } = await import('./dcr-command.js')
    process.exitCode = await runDcrCommand(
      config,
      positionals[1],
      values.upstream,
      (line) => process.stdout.write(`${line}\n`),
      (line) => process.stderr.write(`${line}\n`),
    )
    return
  }
  if (command === 'registry' && (positionals[1] === 'set-auth' || positionals[1] === 'unset-auth')) {
    // Edits the file in place, comments kept; the result is validated before it is written.
    const set = positionals[1] === 'set-auth'
    if (!values.config || !values.registry) usage(`registry ${positionals[1]} needs --config and --registry`)
    if (set && (!values.issuer || !values['client-id'])) usage('registry set-auth needs --issuer and --client-id')
    const { editRegistryAuth } = await import('../config/index.js')
    try {
      editRegistryAuth(
        values.config,
        values.registry,
        set
          ? {
              issuer: values.issuer as string,
              clientId: values['client-id'] as string,
              ...(values.scopes ? { scopes: values.scopes.split(/[\s,]+/).filter(Boolean) } : {}),
              ...(values.audience ? { audience: values.audience } : {}),
            }
          : undefined,
      )
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`)
        process.exit(EXIT_CONFIG)
      }
      throw err
    }
    process.stdout.write(`${set ? 'set' : 'removed'} the sign-in of registry ${values.registry} in ${values.config}\n`)
    return
  }
  if (command === 'registry') {
    const config = load(values.config)
    const { runRegistryCommand } = await import('./registry-command.js')
    process.exitCode = await runRegistryCommand(config, positionals[1], {
      registry: values.registry,
      noBrowser: values['no-browser'] ?? false,
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    })
    return
  }
  if (command !== 'serve') usage(`unknown command "${command}"${didYouMean(command, COMMANDS)}`)

  const port = values.port === undefined ? undefined : Number(values.port)
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    usage(`--port must be 0-65535, got "${values.port}"`)
  }
  const level = values['log-level']
  if (level !== undefined && !LEVELS.includes(level)) usage(`--log-level must be one of ${LEVELS.join(', ')}`)
  // The command line wins over the file, on start and on every reload.
  const withOverrides = (config: VmcpConfig): VmcpConfig => {
    if (values.host) config.server.host = values.host
    if (port !== undefined) config.server.port = port
    if (level !== undefined) config.operational.logLevel = level as VmcpConfig['operational']['logLevel']
    return config
  }
  const configPath = values.config
  const config = withOverrides(load(configPath))
  const logger = createLogger({ level: config.operational.logLevel as LogLevel })
  // Loaded only to serve: --version, --help and validate stay fast.
  const { createVmcp } = await import('../server/index.js')
  const { createConfigReloader, watchConfigFile } = await import('./reload.js')
  const vmcp = createVmcp({ config, logger })
  const reload = createConfigReloader({
    load: () => withOverrides(loadConfigFile(configPath as string).config),
    apply: (next) => vmcp.reload(next),
    logger,
  })
  const watcher = values.watch ? watchConfigFile(configPath as string, () => void reload('watch'), logger) : undefined

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal: the operator does not want to wait. Children get SIGKILL on exit.
      logger.warn({ signal }, 'second signal: exiting now')
      logger.flush()
      process.exit(EXIT_RUNTIME)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    // Hard deadline: whatever hangs, vmcp is gone shortly after shutdownTimeout, and so are its
    // children (mcp/children.ts kills every one still alive on exit).
    const deadlineMs = config.operational.shutdownTimeout + HARD_EXIT_MARGIN_MS
    setTimeout(() => {
      logger.error({ signal, timeoutMs: deadlineMs }, 'shutdown did not finish in time: exiting now')
      logger.flush()
      process.exit(EXIT_RUNTIME)
    }, deadlineMs).unref()
    watcher?.close()
    vmcp
      .close()
      .then(() => {
        logger.info('stopped')
        logger.flush()
        process.exit(0)
      })
      .catch((err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed')
        process.exit(EXIT_RUNTIME)
      })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // SIGHUP (also sent when the terminal closes) must not kill vmcp and orphan its children: it
  // reloads the configuration file, keeping the running one when the new one is invalid.
  process.on('SIGHUP', () => void reload('SIGHUP'))

  try {
    await vmcp.start()
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'failed to start')
    logger.flush()
    process.exit(EXIT_RUNTIME)
  }
}

process.on('unhandledRejection', (err) => {
  // A stray rejection must not take the gateway down; it is a bug to log, not a reason to exit.
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', err: String(err) })}\n`)
})

await main(process.argv.slice(2))
