import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js'
import { revealAll, type Secret } from '../log/index.js'

/**
 * The environment of a backend child process: a minimal safe base (PATH, HOME, …) plus the
 * configured values. vmcp's own environment is not inherited, so its secrets stay out of backends.
 */
export function childEnvironment(env: Readonly<Record<string, Secret>>): Record<string, string> {
  return { ...getDefaultEnvironment(), ...revealAll(env) }
}
