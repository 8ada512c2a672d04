import { createHash } from 'node:crypto'

// MCP 2025-11-25 §Tools "Tool names": 1-64 characters of A-Z a-z 0-9 _ - .
export const MAX_NAME_LENGTH = 64
const VALID_NAME = /^[A-Za-z0-9_.-]{1,64}$/
const INVALID_CHARS = /[^A-Za-z0-9_.-]/g

export function isValidToolName(name: string): boolean {
  return VALID_NAME.test(name)
}

export function applyPrefix(format: string, backend: string, name: string): string {
  return format.replaceAll('{backend}', backend) + name
}

/**
 * Maps any candidate name onto the MCP name rules, deterministically: invalid characters become
 * `_` and an over-long name is cut; either way the name gains an 8-hex SHA-256 suffix of the
 * original candidate, so the same backend tool gets the same exposed name on every restart.
 */
export function toValidName(candidate: string): string {
  if (isValidToolName(candidate)) return candidate
  // The hash is of the original, so `a b` and `a_b` cannot both become `a_b`.
  const cleaned = candidate.replace(INVALID_CHARS, '_')
  const hash = createHash('sha256').update(candidate).digest('hex').slice(0, 8)
  return `${cleaned.slice(0, MAX_NAME_LENGTH - 9)}_${hash}`
}
