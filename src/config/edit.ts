import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { isMap, isSeq, parseDocument } from 'yaml'
import { ConfigError } from './errors.js'
import { validateConfig } from './load.js'

export interface RegistryAuthEdit {
  issuer: string
  clientId: string
  scopes?: string[]
  audience?: string
}

/**
 * Sets (or, with `auth` undefined, removes) `registries[name].auth` in the YAML file in place:
 * comments and layout elsewhere are kept (yaml Document API). The edited file is validated
 * before it is written; a ConfigError leaves the file untouched.
 */
export function editRegistryAuth(path: string, name: string, auth: RegistryAuthEdit | undefined): void {
  const abs = resolve(path)
  const doc = parseDocument(readFileSync(abs, 'utf8'))
  const seq = doc.get('registries', true)
  const index = isSeq(seq) ? seq.items.findIndex((item) => isMap(item) && item.get('name') === name) : -1
  if (index < 0) throw new ConfigError([{ path: 'registries', message: `no registry named "${name}"` }])
  if (auth) {
    doc.setIn(['registries', index, 'auth'], doc.createNode({ type: 'oauth', ...auth }))
  } else {
    doc.deleteIn(['registries', index, 'auth'])
  }
  validateConfig(doc.toJS(), { baseDir: dirname(abs) })
  const tmp = `${abs}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  writeFileSync(tmp, doc.toString({ flowCollectionPadding: false }), { mode: statSync(abs).mode & 0o777 })
  renameSync(tmp, abs)
}
