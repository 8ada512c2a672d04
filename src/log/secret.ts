import { inspect } from 'node:util'

const REDACTED = '[REDACTED]'

/**
 * A secret value (client secret, header value, token) that never prints itself: `toString`,
 * `toJSON` and `util.inspect` all give `[REDACTED]`, so a secret that slips into a log line or an
 * error message is still safe. Read the real value with `reveal()` at the one place it is sent.
 */
export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
  }

  reveal(): string {
    return this.#value
  }

  toString(): string {
    return REDACTED
  }

  toJSON(): string {
    return REDACTED
  }

  [inspect.custom](): string {
    return REDACTED
  }
}

/** The revealed values of a map of secrets, for the one place they are sent (headers, env). */
export function revealAll(secrets: Readonly<Record<string, Secret>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k in secrets) out[k] = (secrets[k] as Secret).reveal()
  return out
}
