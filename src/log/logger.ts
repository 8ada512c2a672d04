import { createHash } from 'node:crypto'
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'
import pinoPretty from 'pino-pretty'

export type { Logger } from 'pino'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

// Keys whose values are secrets wherever they appear in a logged object (ARCHITECTURE.md §Logging).
const SECRET_KEYS = [
  'authorization',
  'Authorization',
  'cookie',
  'set-cookie',
  'client_secret',
  'clientSecret',
  'code',
  'code_verifier',
  'access_token',
  'refresh_token',
  'id_token',
  'subject_token',
  'registration_access_token',
  'initial_access_token',
  'initialAccessToken',
  'token',
  'password',
  'secret',
]
// Keys that are only secret in a known place: `code` is an OAuth code in bodies and queries but an
// errno string on errors; private JWK members only inside keys.
const SCOPED_PATHS = [
  'code',
  ...['body', 'query', 'params', 'form'].map((k) => `${k}.code`),
  ...['jwk', 'key', 'privateKey', 'privateJwk'].flatMap((k) =>
    ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].map((m) => `${k}.${m}`),
  ),
]

const quote = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`)
const join = (prefix: string, k: string) => (k.startsWith('[') ? `${prefix}${k}` : `${prefix}.${k}`)

export const REDACT_PATHS = [
  ...SECRET_KEYS.map(quote).flatMap((k) => [k, join('*', k), join('*.*', k)]),
  ...SCOPED_PATHS,
]

export interface CreateLoggerOptions {
  level?: LogLevel
  /** Human-readable output (default: when stderr is a terminal). */
  pretty?: boolean
  /** Where lines go; default stderr, keeping stdout clean for stdio use. */
  destination?: DestinationStream
}

/** The pino logger: JSON lines to stderr, secrets redacted by key. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const base: LoggerOptions = {
    level: options.level ?? 'info',
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  const pretty = options.pretty ?? (options.destination === undefined && process.stderr.isTTY === true)
  if (pretty) {
    // One line per event: the message, then its fields as compact JSON on the same line (not a
    // tree of 7-8 lines per event), so a terminal reads as a list of what happened.
    const toTerminal = options.destination === undefined
    return pino(
      base,
      pinoPretty({
        destination: options.destination ?? 2,
        colorize: toTerminal && process.stderr.isTTY === true,
        singleLine: true,
        translateTime: 'SYS:HH:MM:ss',
        ignore: 'pid,hostname',
        sync: !toTerminal,
      }),
    )
  }
  if (options.destination) return pino(base, options.destination)
  return pino(base, pino.destination({ dest: 2, sync: false }))
}

/**
 * A short, stable, non-reversible tag for a secret, so log lines can be correlated without the
 * secret itself: first 12 hex chars of its SHA-256.
 */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12)
}
