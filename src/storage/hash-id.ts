import { createHash } from 'node:crypto'

export function hashId(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}
