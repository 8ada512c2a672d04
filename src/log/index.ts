export { createLogger, fingerprint, REDACT_PATHS, type CreateLoggerOptions, type Logger, type LogLevel } from './logger.js'
export { revealAll, Secret } from './secret.js'
