/**
 * The bound for every `vi.waitFor` in this suite. vitest's default (1 s) is a timing assumption a
 * loaded 2-core machine breaks: a child process can take seconds to start listening. Tests wait
 * for a condition, never for a time; the bound only decides how long a real failure takes to show.
 */
export const EVENTUALLY = { timeout: 20_000, interval: 50 } as const
