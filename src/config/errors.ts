/** One problem found in the configuration, located by its YAML path (`backends[1].url`). */
export interface ConfigIssue {
  path: string
  message: string
}

/**
 * Startup-only error for an invalid configuration. Carries every issue found, so the operator can
 * fix them all at once. The CLI prints `message` and exits 2.
 */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[]) {
    super(formatIssues(issues))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

export function formatIssues(issues: readonly ConfigIssue[]): string {
  return ['invalid configuration:', ...issues.map((i) => `- ${i.path || '(root)'}: ${i.message}`)].join(
    '\n',
  )
}

/** Renders a zod/YAML path as the operator reads it in the file: `backends[1].url`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else out += out ? `.${String(seg)}` : String(seg)
  }
  return out
}
