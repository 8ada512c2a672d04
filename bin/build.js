#!/usr/bin/env node
// Builds dist/ from the TypeScript sources when they are newer than the last build, and says so.
// `npm install` runs it (prepare); bin/vmcp.js runs it before every start in a clone. An installed
// package has no sources and never builds.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// tsc -b writes it after every build that changed or checked something (tsconfig: incremental).
const STAMP = join(ROOT, 'dist', 'tsconfig.tsbuildinfo')
const INPUTS = ['src', 'bench', 'tsconfig.json']

function newestMtime(path) {
  const stat = statSync(path, { throwIfNoEntry: false })
  if (!stat) return 0
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

/** Why dist/ must be (re)built, or undefined when it is current or there is nothing to build. */
export function staleReason() {
  if (!existsSync(join(ROOT, 'src'))) return undefined
  const built = statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs
  if (built === undefined) return 'no build yet'
  const changed = Math.max(...INPUTS.map((p) => newestMtime(join(ROOT, p))))
  return changed > built ? 'sources changed since the last build' : undefined
}

/** Runs the incremental build when needed, telling stderr first. Returns false if tsc failed. */
export function buildIfStale() {
  const reason = staleReason()
  if (!reason) return true
  let tsc
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  } catch {
    process.stderr.write(`vmcp: ${reason}, and TypeScript is not installed: run npm install\n`)
    return false
  }
  process.stderr.write(`vmcp: ${reason}; compiling (incremental tsc -b)…\n`)
  const started = Date.now()
  const run = spawnSync(process.execPath, [tsc, '-b', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' })
  if (run.status !== 0) return false
  process.stderr.write(`vmcp: compiled in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  return true
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // npx in a clone installs the folder into its cache and runs prepare there with the output
  // hidden: leave the build to bin/vmcp.js, which says what it does.
  if (process.env.npm_command === 'exec') process.exit(0)
  process.exit(buildIfStale() ? 0 : 1)
}
