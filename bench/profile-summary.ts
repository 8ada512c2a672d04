// node dist/bench/profile-summary.js <file.cpuprofile> [top=25] [callers-of-substring]
// Self time per function and per package (node_modules/<pkg>, src/<domain>, node:internal)
// from a V8 CPU profile written by `node --cpu-prof` (BENCH_PROFILE=1 npm run bench).
// Percentages are of busy time: idle samples are left out. With a third argument, also prints
// the heaviest call stacks leading to functions whose name contains it.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** The summary of one profile as text: by package, by function, inclusive, optional stacks. */
export function summarizeProfile(file: string, top = 25, callersOf?: string): string {
  const lines: string[] = []
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  for (const [id] of self) if (byId.get(id)!.callFrame.functionName === '(idle)') self.delete(id)
  const total = [...self.values()].reduce((a, b) => a + b, 0)

  const shortUrl = (url: string) =>
    url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')
  const frameKey = (id: number, sep = ' ') => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    return `${functionName || '(anonymous)'}${sep}${shortUrl(url)}:${lineNumber + 1}`
}

const bucketOf = (url: string) => {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1]!
  const src = /\/dist\/src\/([^/]+)/.exec(url)
  if (src) return `src/${src[1]}`
  if (url.startsWith('node:')) return 'node:internal'
  return url ? url : '(native/gc/idle)'
}

const fns = new Map<string, number>()
const buckets = new Map<string, number>()
for (const [id, t] of self) {
  const key = frameKey(id)
  fns.set(key, (fns.get(key) ?? 0) + t)
  const b = bucketOf(byId.get(id)!.callFrame.url)
  buckets.set(b, (buckets.get(b) ?? 0) + t)
}
const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)} %`
const print = (title: string, m: Map<string, number>) => {
  lines.push('', title)
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`${pct(t)}  ${k}`)
  }
}
lines.push(`${file}: ${(total / 1e6).toFixed(2)} s busy`)
print('self time by package', buckets)
print('self time by function', fns)

// Inclusive: each sample counts once for every distinct function on its stack.
const inclusive = new Map<string, number>()
for (const [id, t] of self) {
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const { url } = byId.get(cur)!.callFrame
    if (!url || url.startsWith('node:')) continue
    const key = frameKey(cur)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + t)
  }
}
print('inclusive time by function (library and app code)', inclusive)

if (callersOf) {
  // Inclusive time of matching frames, grouped by the chain of their callers.
  const stacks = new Map<string, number>()
  for (const [id, t] of self) {
    const chain: number[] = []
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) chain.push(cur)
    const hit = chain.findIndex((c) => byId.get(c)!.callFrame.functionName.includes(callersOf))
    if (hit < 0) continue
    const key = chain
      .slice(hit, hit + 10)
      .map((c) => frameKey(c, '@'))
      .join(' < ')
    stacks.set(key, (stacks.get(key) ?? 0) + t)
  }
  print(`stacks through *${callersOf}* (inclusive)`, stacks)
}
return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, topArg, callersOf] = process.argv.slice(2)
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  process.stdout.write(`${summarizeProfile(file, Number(topArg ?? 25), callersOf)}\n`)
}
