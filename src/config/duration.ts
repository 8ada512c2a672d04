const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export const DURATION_PATTERN = '^([0-9]+(ms|s|m|h|d))+$'
const PART = /([0-9]+)(ms|s|m|h|d)/g

/** Parses `30s`, `5m`, `1h30m`, `250ms` into milliseconds; `undefined` when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!new RegExp(DURATION_PATTERN).test(text)) return undefined
  let total = 0
  for (const m of text.matchAll(PART)) total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0)
  return total
}
