// npm run bench: tools/call throughput and latency (direct vs through vmcp, with and without
// Mode A JWT validation, and in Mode B: vmcp's own JWT plus the user's upstream token injected
// into the backend call), vmcp's /oauth/token refresh_token throughput, aggregated tools/list
// latency, and RSS per idle session. Everything runs on 127.0.0.1 (the Mode B upstream IdP is an
// in-process oidc-provider); the table goes to stdout, every number to bench/results.json.
//
//   BENCH_SECONDS=10  measured seconds per tools/call row, in interleaved rounds after 3 s of
//                     warm-up (the 2026-07-28 rows get half); the ratios the targets compare are
//                     printed with a 95 % interval bootstrapped over those rounds
//   BENCH_TURN_MS=500 how long each row's turn in a round lasts
//   BENCH_PROFILE=1   run the throughput vmcp child and the Mode B child with --cpu-prof; prints
//   (or --profile)    where the profiles are (Mode B's covers its tools/call and /oauth/token runs)
//                     and writes bench/profile-summary.md from the vmcp child's profile
//   --calls           only the tools/call rows (direct, bare relay, vmcp, vmcp+jwt, Mode B):
//                     prints each run, writes no results.json (a quick before/after of the hot path)
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'
import { stringify } from 'yaml'
import { startJwksServer, type JwksServer } from './jwks-server.js'
import { pairedRatio, runLoad, summarize, turnOrder, type LatencySummary, type LoadResult, type PairedRatio } from './load.js'
import { McpHttpSession, McpModernCaller } from './mcp-http.js'
import { summarizeProfile } from './profile-summary.js'
import { ModeBClient } from './oauth-flow.js'
import {
  freePort,
  killAll,
  readCpuMs,
  readRssBytes,
  ROOT,
  readHostTicks,
  stealShare,
  startBareRelay,
  startHttpBackend,
  startModernBackend,
  startVmcp,
  TEST_BACKEND,
  type BackendChild,
  type Child,
  type VmcpChild,
} from './processes.js'
import { startUpstreamIdp, type UpstreamIdp } from './upstream-idp.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
if (!(SECONDS > 0)) throw new Error('BENCH_SECONDS must be a positive number')
// Long enough for V8 to have compiled the hot path (CPU per call keeps falling for seconds).
const WARMUP_MS = 3000
/**
 * How long one turn of one row lasts (interleaved rows). The host's load moves on a scale of
 * seconds, and a round of six rows spans six turns: shorter turns keep the rows of a round
 * closer in time, so a round's ratio compares rows under more nearly the same load, and give
 * more rounds to average over. Turns of 1 s, at c=32, with two rows of two processes each (each
 * process idle some 3 s between its turns): a turn's first 200 ms ran at 1.01–1.07× the rate of
 * its rest, so a shorter turn is not a slower one.
 */
const TURN_MS = Number(process.env.BENCH_TURN_MS ?? 500)
if (!(TURN_MS > 0)) throw new Error('BENCH_TURN_MS must be a positive number')
const roundsFor = (seconds: number) => Math.max(1, Math.round((seconds * 1000) / TURN_MS))
/** The /oauth/token and tools/list runs: no ratio between rows to pin down, so half the time. */
const OTHER_RUN_MS = (SECONDS * 1000) / 2
const PROFILE = process.env.BENCH_PROFILE === '1' || process.argv.includes('--profile')
const PROFILE_SUMMARY = resolve(ROOT, 'bench/profile-summary.md')
const CALLS_ONLY = process.argv.includes('--calls')
const CONCURRENCY = [1, 32] as const
const TOKEN_CONCURRENCY = [1, 8] as const
const LIST_BACKENDS = 20
const LIST_TOOLS_PER_BACKEND = 50
const IDLE_SESSIONS = 1000
// Opened before the baseline reading, so one-time costs (JIT, lazy init) do not count per session.
const WARM_SESSIONS = 50
const OPEN_CONCURRENCY = 16
const AUDIENCE = 'vmcp-bench'
const BACKEND_NAME = 'bench'
const RESULTS = resolve(ROOT, 'bench/results.json')

const MODE_B = 'vmcp mode B (own JWT + upstream_inject)'
// node:http + undici Pool, rewriting only the tool name: what any relaying hop costs.
const BARE = 'bare relay'
const UPSTREAM = 'corp'
// Mode B target: within 10 % of Mode A (vmcp+jwt) throughput.
const MODE_B_MIN_RATIO = 0.9

const MODERN_DIRECT = 'direct, 2026-07-28 stateless'
const MODERN_VMCP = 'vmcp, 2026-07-28 stateless'
// A 2026-07-28 caller of the 2025 HTTP backend: the raw relay, as for the 'vmcp' session row.
const MODERN_TO_2025 = 'vmcp, 2026-07-28 stateless → 2025 backend'
// The fixture in 2026-07-28 only (--legacy reject): the raw relay speaking that revision.
const MODERN_ONLY_DIRECT = 'direct, 2026-07-28-only backend'
const MODERN_ONLY_VMCP = 'vmcp, 2026-07-28 stateless → 2026-07-28-only backend'

interface CallTarget {
  label:
    | 'direct'
    | typeof BARE
    | 'vmcp'
    | 'vmcp+jwt'
    | typeof MODE_B
    | typeof MODERN_DIRECT
    | typeof MODERN_VMCP
    | typeof MODERN_TO_2025
    | typeof MODERN_ONLY_DIRECT
    | typeof MODERN_ONLY_VMCP
  /** 2026-07-28 callers: one stateless caller per worker instead of one session. */
  stateless?: boolean
  tool: string
  /**
   * The processes serving the row, each at `url` with its CPU time per call recorded: one, or
   * two of the same kind (same config, each its own start) that take the row's rounds in turn,
   * so one process's luck (code placement, GC timing) does not make the row.
   */
  processes: Array<{ url: string; pid: number; headers?: Record<string, string> }>
}

interface CallRun extends LoadResult {
  target: CallTarget['label']
  /** req/s in each interleaved round, in order: rows of one concurrency pair up round by round. */
  roundRps: number[]
  /**
   * CPU time (user + system) of the serving process per call over the measured window, in µs. Less
   * sensitive than req/s to other load on the host: compare modes on it when throughput is noisy.
   */
  serverCpuUsPerCall: number
}

const tmp = mkdtempSync(join(tmpdir(), 'vmcp-bench-'))
const children: Child[] = []
let jwks: JwksServer | undefined
let idp: UpstreamIdp | undefined

const profileDir = join(tmp, 'profiles')
const profileArgs = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`)
const round = (n: number, digits = 2) =>
  Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : n
/** The row of `target` at concurrency `c`, if it was measured. */
const findRow = (calls: CallRun[], target: CallRun['target'], c: number) =>
  calls.find((r) => r.target === target && r.concurrency === c)

/** Throughput of row `a` over row `b` at concurrency `c`, round by round (NaN if a row is missing). */
function rowRatio(calls: CallRun[], a: CallRun['target'], b: CallRun['target'], c: number): PairedRatio {
  const rounds = (t: CallRun['target']) => findRow(calls, t, c)?.roundRps ?? []
  return pairedRatio(rounds(a), rounds(b))
}

/** A ratio and its 95 % interval; the ratio floored to three decimals, so one just under a goal never prints as it. */
const ratioText = (r: PairedRatio) => `${Math.floor(r.ratio * 1000) / 1000}× (95 % ${round(r.low)}–${round(r.high)})`

function writeConfig(name: string, config: Record<string, unknown>): string {
  const path = join(tmp, `${name}.yaml`)
  writeFileSync(path, stringify({ name: `bench-${name}`, ...config }))
  return path
}

function stdioBackend(name: string, tools: number) {
  return {
    name,
    transport: 'stdio',
    command: process.execPath,
    args: [TEST_BACKEND, '--transport', 'stdio', '--name', name, '--tools', String(tools)],
  }
}

async function vmcp(
  name: string,
  config: Record<string, unknown>,
  nodeArgs: string[] = [],
  readyTimeoutMs?: number,
  port?: number,
) {
  const child = await startVmcp({
    name,
    configPath: writeConfig(name, config),
    nodeArgs,
    ...(readyTimeoutMs ? { readyTimeoutMs } : {}),
    ...(port ? { port } : {}),
  })
  children.push(child)
  return child
}

async function stop(child: Child | undefined) {
  if (!child) return
  await child.stop()
  const i = children.indexOf(child)
  if (i >= 0) children.splice(i, 1)
}

async function openSessions(pool: Pool, url: string, n: number, headers?: Record<string, string>) {
  const path = new URL(url).pathname
  const out: McpHttpSession[] = []
  let next = 0
  const opener = async () => {
    while (next < n) {
      next++
      out.push(await McpHttpSession.open({ pool, path, ...(headers ? { headers } : {}) }))
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, OPEN_CONCURRENCY) }, opener))
  return out
}

// ---- Mode B: vmcp as its own authorization server in front of an upstream IdP ----

interface ModeB {
  issuer: string
  child: VmcpChild
  client: ModeBClient
  /** Wall time of every headless sign-in (authorize → IdP → callback → code grant), ms. */
  signInMs: number[]
  signIn(): Promise<{ access_token: string; refresh_token?: string }>
}

/**
 * vmcp in Mode B, twice (the tools/call row's two processes; the first also serves the token and
 * sign-in runs), each on a port chosen up front (its issuer names it): memory storage, one `oidc`
 * upstream (the in-process IdP, one confidential client for both `${issuer}/oauth/callback`), the
 * echo backend behind upstream_inject, rate limits out of the way of the token benchmark.
 */
async function startModeBs(backend: BackendChild, nodeArgs: string[]): Promise<[ModeB, ModeB]> {
  const ports = [await freePort(), await freePort()]
  idp = await startUpstreamIdp({ redirectUris: ports.map((port) => `http://127.0.0.1:${port}/oauth/callback`) })
  const secretFile = join(tmp, 'idp-client-secret')
  writeFileSync(secretFile, idp.clientSecret, { mode: 0o600 })
  const first = await startModeB(backend, nodeArgs, ports[0] as number, secretFile, '')
  return [first, await startModeB(backend, [], ports[1] as number, secretFile, '-2')]
}

async function startModeB(
  backend: BackendChild,
  nodeArgs: string[],
  port: number,
  secretFile: string,
  suffix: string,
): Promise<ModeB> {
  const issuer = `http://127.0.0.1:${port}`
  const resource = `${issuer}/mcp`
  const upstream = idp as UpstreamIdp
  const child = await vmcp(
    `mode-b${suffix}`,
    {
      backends: [{ name: BACKEND_NAME, transport: 'streamable-http', url: backend.url }],
      incomingAuth: {
        type: 'oidc',
        oidc: { issuer, audience: resource, resource, scopes: ['openid', 'offline_access'] },
      },
      outgoingAuth: {
        backends: {
          [BACKEND_NAME]: { type: 'upstream_inject', upstreamInject: { providerName: UPSTREAM } },
        },
      },
      authServer: {
        runConfig: {
          issuer,
          allowedAudiences: [resource],
          storage: { type: 'memory' },
          rateLimits: { token: 1_000_000, register: 1000 },
          dataDir: join(tmp, `mode-b-data${suffix}`),
          upstreams: [
            {
              name: UPSTREAM,
              type: 'oidc',
              oidc: {
                issuerUrl: upstream.issuer,
                clientId: upstream.clientId,
                clientSecret: { file: secretFile },
                scopes: ['openid', 'offline_access', 'email'],
              },
            },
          ],
        },
      },
    },
    nodeArgs,
    undefined,
    port,
  )
  const client = await ModeBClient.register({ issuer, resource, scope: 'openid offline_access' })
  const signInMs: number[] = []
  return {
    issuer,
    child,
    client,
    signInMs,
    async signIn() {
      const t0 = performance.now()
      const tokens = await client.signIn()
      signInMs.push(performance.now() - t0)
      return tokens
    },
  }
}

// ---- 1 + 2: tools/call throughput and latency ----

/**
 * The rows of one concurrency, measured interleaved: every target's sessions are opened and
 * warmed up first, then the measured time is cut into rounds and the targets take turns, so a
 * change in the host's load (other processes, CPU frequency) shifts every row alike and the
 * ratios between rows hold. Server CPU is read over each target's own slices only.
 */
async function measureCallsInterleaved(
  targets: CallTarget[],
  concurrency: number,
  seconds = SECONDS,
): Promise<CallRun[]> {
  const rounds = roundsFor(seconds)
  const sliceMs = (seconds * 1000) / rounds
  const args = { text: 'ping' }
  interface Leg {
    pid: number
    pool: Pool
    sessions: Array<McpHttpSession | McpModernCaller>
  }
  interface Prepared {
    target: CallTarget
    legs: Leg[]
    samples: number[]
    roundRps: number[]
    cpuMs: number
    finished: number
    errors: number
    firstError: string | undefined
  }
  const prepared: Prepared[] = []
  try {
    for (const target of targets) {
      const p: Prepared = { target, legs: [], samples: [], roundRps: [], cpuMs: 0, finished: 0, errors: 0, firstError: undefined }
      prepared.push(p)
      for (const { url, pid, headers } of target.processes) {
        const pool = new Pool(new URL(url).origin, { connections: concurrency, keepAliveTimeout: 60_000 })
        const path = new URL(url).pathname
        const sessions: Array<McpHttpSession | McpModernCaller> = target.stateless
          ? Array.from({ length: concurrency }, () => new McpModernCaller({ pool, path, headers: headers ?? {} }))
          : await openSessions(pool, url, concurrency, headers)
        p.legs.push({ pid, pool, sessions })
        const probe = await sessions[0]!.callTool(target.tool, args)
        const text = (probe.content as Array<{ text?: string }> | undefined)?.[0]?.text
        if (text !== `${BACKEND_NAME}: ping`) {
          throw new Error(`${target.label}: unexpected echo ${JSON.stringify(probe)}`)
        }
      }
    }
    const slice = (p: Prepared, leg: Leg, warmupMs: number, durationMs: number, measured: boolean) => {
      let cpuStart = 0
      return runLoad({
        concurrency,
        warmupMs,
        durationMs,
        call: (i) => leg.sessions[i]!.callTool(p.target.tool, args),
        ...(measured
          ? {
              samples: p.samples,
              onWindowStart: () => {
                cpuStart = readCpuMs(leg.pid)
              },
              onWindowEnd: () => {
                p.cpuMs += readCpuMs(leg.pid) - cpuStart
              },
            }
          : {}),
      }).then((r) => {
        if (!measured) return
        p.finished += r.finishedInWindow
        p.errors += r.errors
        p.firstError ??= r.firstError
      })
    }
    // Warm-up: long enough for V8 to have compiled each process's hot path.
    for (const p of prepared) for (const leg of p.legs) await slice(p, leg, 0, WARMUP_MS, false)
    // Each round in another order (see turnOrder): no row always follows the same one, whose
    // process may still be finishing its work (a concurrent GC, socket teardown) when the next
    // turn starts.
    for (let round = 0; round < rounds; round++) {
      for (const p of turnOrder(prepared.length, round).map((i) => prepared[i] as Prepared)) {
        const before = p.samples.length
        // A row of two processes alternates them round by round.
        await slice(p, p.legs[round % p.legs.length] as Leg, 0, sliceMs, true)
        p.roundRps.push(((p.samples.length - before) * 1000) / sliceMs)
      }
    }
    return prepared.map((p) => {
      const result = {
        concurrency,
        seconds,
        requests: p.samples.length,
        errors: p.errors,
        ...(p.firstError ? { firstError: p.firstError } : {}),
        rps: p.samples.length / seconds,
        finishedInWindow: p.finished,
        ...summarize(p.samples),
      }
      const serverCpuUsPerCall = (p.cpuMs * 1000) / p.finished
      const errors = result.errors ? `, ${result.errors} errors (${result.firstError})` : ''
      log(
        `${p.target.label} c=${concurrency}: ${round(result.rps, 0)} req/s, ` +
          `p50 ${round(result.p50Ms, 3)} ms, p99 ${round(result.p99Ms, 3)} ms, ` +
          `server CPU ${round(serverCpuUsPerCall, 0)} µs/call${errors}`,
      )
      return { target: p.target.label, serverCpuUsPerCall, roundRps: p.roundRps, ...result }
    })
  } finally {
    for (const leg of prepared.flatMap((p) => p.legs)) {
      await Promise.allSettled(leg.sessions.map((s) => s.close()))
      await leg.pool.close()
    }
  }
}

async function benchCalls(backend: BackendChild, modeBs: [ModeB, ModeB]) {
  jwks = await startJwksServer()
  const backends = [{ name: BACKEND_NAME, transport: 'streamable-http', url: backend.url }]
  const jwtConfig = {
    backends,
    incomingAuth: {
      type: 'oidc',
      oidc: {
        issuer: jwks.issuer,
        audience: AUDIENCE,
        resource: 'http://127.0.0.1/mcp',
        jwksUrl: jwks.jwksUrl,
        algorithms: ['ES256'],
      },
    },
  }
  // Every relay row has two processes of its own, which take its rounds in turn (see
  // CallTarget.processes): so each relaying process idles equally long between its turns (a process
  // that also served another row would be woken more often), and one process's luck does not make
  // a row. The first `vmcp` process is the one profiled.
  const bares = [await startBareRelay(backend.url), await startBareRelay(backend.url)]
  children.push(...bares)
  const anons = [await vmcp('calls', { backends }, profileArgs), await vmcp('calls-2', { backends })]
  const moderns = [await vmcp('calls-modern', { backends }), await vmcp('calls-modern-2', { backends })]
  const jwts = [await vmcp('calls-jwt', jwtConfig), await vmcp('calls-jwt-2', jwtConfig)]
  const token = await jwks.mint(AUDIENCE)
  const prefixed = `${BACKEND_NAME}_echo`
  const bearer = { authorization: `Bearer ${token}` }
  // One sign-in per Mode B process, one token for all its sessions (as the Mode A row shares one
  // minted token).
  const modeBBearers = await Promise.all(
    modeBs.map(async (m) => ({ authorization: `Bearer ${(await m.signIn()).access_token}` })),
  )
  const targets: CallTarget[] = [
    { label: 'direct', tool: 'echo', processes: [backend] },
    { label: BARE, tool: prefixed, processes: bares },
    { label: 'vmcp', tool: prefixed, processes: anons },
    { label: MODERN_TO_2025, stateless: true, tool: prefixed, processes: moderns },
    { label: 'vmcp+jwt', tool: prefixed, processes: jwts.map(({ url, pid }) => ({ url, pid, headers: bearer })) },
    {
      label: MODE_B,
      tool: prefixed,
      processes: modeBs.map(({ child: { url, pid } }, i) => ({ url, pid, headers: modeBBearers[i] })),
    },
  ]
  const runs: CallRun[] = []
  for (const c of CONCURRENCY) runs.push(...(await measureCallsInterleaved(targets, c)))
  for (const child of [...anons, ...moderns, ...jwts, ...bares]) await stop(child)
  await stop(modeBs[1].child)
  // Profile files are named CPU.<date>.<pid>.…: the pids tell the two children apart.
  const profiles = { profileDir, pids: { vmcp: anons[0]!.pid, modeB: modeBs[0].child.pid } }
  return { runs, jwksFetches: jwks.jwksHits, ...(PROFILE ? profiles : {}) }
}

// ---- tools/call in the 2026-07-28 era: stateless requests, direct vs through vmcp ----

/** The modern fixture backend (v2 SDK) alone, then behind vmcp; both answered statelessly. */
async function benchModern(): Promise<CallRun[]> {
  const backend = await startModernBackend(BACKEND_NAME)
  children.push(backend)
  const gw = await vmcp('modern', {
    backends: [{ name: BACKEND_NAME, transport: 'streamable-http', url: backend.url }],
  })
  const only = await startModernBackend(BACKEND_NAME, ['--legacy', 'reject'])
  children.push(only)
  const onlyGw = await vmcp('modern-only', {
    backends: [{ name: BACKEND_NAME, transport: 'streamable-http', url: only.url }],
  })
  const tool = `${BACKEND_NAME}_echo`
  const targets: CallTarget[] = [
    { label: MODERN_DIRECT, stateless: true, tool: 'echo', processes: [backend] },
    { label: MODERN_VMCP, stateless: true, tool, processes: [gw] },
    { label: MODERN_ONLY_DIRECT, stateless: true, tool: 'echo', processes: [only] },
    { label: MODERN_ONLY_VMCP, stateless: true, tool, processes: [onlyGw] },
  ]
  const runs: CallRun[] = []
  // No targets read these rows: half the time is enough for what they show.
  for (const c of CONCURRENCY) runs.push(...(await measureCallsInterleaved(targets, c, SECONDS / 2)))
  await stop(gw)
  await stop(onlyGw)
  await stop(backend)
  await stop(only)
  return runs
}

// ---- Mode B token endpoint: refresh_token grants ----

/**
 * Closed-loop refresh_token grants on vmcp's /oauth/token. Rotation makes each refresh token
 * single use, so every worker signs in first and then follows its own chain.
 */
async function benchToken(modeB: ModeB) {
  const runs: Array<LoadResult & { serverCpuUsPerCall: number }> = []
  let lastAccessToken = ''
  let resignIns = 0
  for (const c of TOKEN_CONCURRENCY) {
    const chains: Array<string | undefined> = []
    for (let i = 0; i < c; i++) chains.push((await modeB.signIn()).refresh_token)
    const pool = new Pool(modeB.child.base, { connections: c, keepAliveTimeout: 60_000 })
    try {
      let calls = 0
      const cpuBefore = readCpuMs(modeB.child.pid)
      const result = await runLoad({
        concurrency: c,
        warmupMs: WARMUP_MS,
        durationMs: OTHER_RUN_MS,
        call: async (i) => {
          calls++
          let current = chains[i]
          if (current === undefined) {
            // The chain broke on an error (counted there); rare, so its sign-in is not excluded.
            resignIns++
            current = (await modeB.signIn()).refresh_token
          }
          chains[i] = undefined
          const tokens = await modeB.client.refresh(pool, current ?? '')
          chains[i] = tokens.refresh_token
          lastAccessToken = tokens.access_token
        },
      })
      const serverCpuUsPerCall = ((readCpuMs(modeB.child.pid) - cpuBefore) * 1000) / calls
      const errors = result.errors ? `, ${result.errors} errors (${result.firstError})` : ''
      log(
        `/oauth/token refresh c=${c}: ${round(result.rps, 0)} req/s, ` +
          `p50 ${round(result.p50Ms, 3)} ms, p99 ${round(result.p99Ms, 3)} ms, ` +
          `server CPU ${round(serverCpuUsPerCall, 0)} µs/refresh${errors}`,
      )
      runs.push({ serverCpuUsPerCall, ...result })
    } finally {
      await pool.close()
    }
  }
  // A refreshed access token must still be good for MCP (and its upstream session with it).
  const pool = new Pool(modeB.child.base, { connections: 1 })
  try {
    const [session] = await openSessions(pool, modeB.child.url, 1, {
      authorization: `Bearer ${lastAccessToken}`,
    })
    await session!.callTool(`${BACKEND_NAME}_echo`, { text: 'ping' })
    await session!.close()
  } finally {
    await pool.close()
  }
  const signIn = summarize(modeB.signInMs)
  log(
    `sign-in (authorize → IdP → callback → code grant): n=${signIn.samples}, p50 ${round(signIn.p50Ms, 1)} ms`,
  )
  return { runs, signIn, resignIns, idpLogins: idp?.logins ?? 0 }
}

// ---- 3: aggregated tools/list ----

async function benchList() {
  const backends = Array.from({ length: LIST_BACKENDS }, (_, i) =>
    stdioBackend(`b${String(i).padStart(2, '0')}`, LIST_TOOLS_PER_BACKEND),
  )
  const started = performance.now()
  const config = { backends, operational: { discoveryTimeout: '60s' } }
  const child = await vmcp('list', config, [], 90_000)
  const startupMs = performance.now() - started
  const status = (await (await fetch(`${child.base}/status`)).json()) as { healthy: number }
  const pool = new Pool(child.base, { connections: 1, keepAliveTimeout: 60_000 })
  try {
    const [session] = await openSessions(pool, child.url, 1)
    let tools = 0
    let bytes = 0
    const result = await runLoad({
      concurrency: 1,
      warmupMs: WARMUP_MS,
      durationMs: OTHER_RUN_MS,
      call: async () => {
        const r = await session!.request('tools/list')
        tools = (r.tools as unknown[]).length
      },
    })
    bytes = JSON.stringify(await session!.request('tools/list')).length
    await session!.close()
    log(
      `tools/list: ${tools} tools from ${status.healthy} backends, ` +
        `p50 ${round(result.p50Ms)} ms, p99 ${round(result.p99Ms)} ms`,
    )
    return {
      backends: LIST_BACKENDS,
      healthyBackends: status.healthy,
      toolsPerBackendFlag: LIST_TOOLS_PER_BACKEND,
      tools,
      resultBytes: bytes,
      startupMs,
      ...result,
    }
  } finally {
    await pool.close()
    await stop(child)
  }
}

// ---- 4: RSS per idle session ----

async function memoryReading(child: VmcpChild): Promise<{ rss: number; heapUsed: number }> {
  const seen = child.benchLines.length
  child.proc.kill('SIGUSR2')
  const deadline = Date.now() + 5000
  while (child.benchLines.length === seen) {
    if (Date.now() > deadline) throw new Error('no memory line from the gc hook')
    await sleep(20)
  }
  const line = JSON.parse(child.benchLines[seen]!) as { heapUsed: number }
  return { rss: readRssBytes(child.pid), heapUsed: line.heapUsed }
}

async function stableReading(child: VmcpChild) {
  await sleep(500)
  const readings: Array<{ rss: number; heapUsed: number }> = []
  for (let i = 0; i < 3; i++) {
    readings.push(await memoryReading(child))
    await sleep(250)
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!
  return {
    rss: median(readings.map((r) => r.rss)),
    heapUsed: median(readings.map((r) => r.heapUsed)),
    readings,
  }
}

async function benchMemory(backend: BackendChild) {
  const hook = pathToFileURL(resolve(ROOT, 'dist/bench/gc-hook.js')).href
  const child = await vmcp(
    'memory',
    {
      backends: [
        stdioBackend('mem_stdio', 0),
        { name: 'mem_http', transport: 'streamable-http', url: backend.url },
      ],
    },
    ['--expose-gc', '--import', hook],
  )
  const pool = new Pool(child.base, { connections: OPEN_CONCURRENCY, keepAliveTimeout: 60_000 })
  try {
    await openSessions(pool, child.url, WARM_SESSIONS)
    const before = await stableReading(child)
    const t0 = performance.now()
    await openSessions(pool, child.url, IDLE_SESSIONS)
    const openMs = performance.now() - t0
    const after = await stableReading(child)
    const status = (await (await fetch(`${child.base}/status`)).json()) as { sessions: number }
    const perSessionBytes = (after.rss - before.rss) / IDLE_SESSIONS
    const heapPerSessionBytes = (after.heapUsed - before.heapUsed) / IDLE_SESSIONS
    log(
      `memory: ${status.sessions} sessions, ${round(perSessionBytes / 1024, 1)} KB RSS / session ` +
        `(heap ${round(heapPerSessionBytes / 1024, 1)} KB)`,
    )
    return {
      sessions: IDLE_SESSIONS,
      warmSessions: WARM_SESSIONS,
      sessionsReported: status.sessions,
      openMs,
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      heapUsedBeforeBytes: before.heapUsed,
      heapUsedAfterBytes: after.heapUsed,
      perSessionBytes,
      heapPerSessionBytes,
      readings: { before: before.readings, after: after.readings },
    }
  } finally {
    await pool.close()
    await stop(child)
  }
}

// ---- report ----

/**
 * Mode B over Mode A (vmcp+jwt) at each concurrency, e.g. { c1: 0.97, c32: 0.95 }: req/s by
 * default, or server CPU per call (above 1 = Mode B costs more).
 */
function modeBRatios(
  calls: CallRun[],
  metric: 'rps' | 'serverCpuUsPerCall' = 'rps',
): Record<string, number> {
  const value = (target: CallRun['target'], c: number) => findRow(calls, target, c)?.[metric] ?? NaN
  return Object.fromEntries(
    CONCURRENCY.map((c) => [`c${c}`, value(MODE_B, c) / value('vmcp+jwt', c)]),
  )
}

type Targets = ReturnType<typeof evaluate>

function evaluate(calls: CallRun[], memory: { perSessionBytes: number }) {
  const get = (target: CallRun['target'], c: number) => {
    const r = findRow(calls, target, c)
    if (!r) throw new Error(`missing run ${target} c=${c}`)
    return r
  }
  // Throughput ratios of rows measured in the same rounds, each with its 95 % interval.
  const versus = (a: CallRun['target'], b: CallRun['target'], c: number) =>
    pairedRatio(get(a, c).roundRps, get(b, c).roundRps)
  const direct32 = versus('vmcp', 'direct', 32)
  const bare32 = versus('vmcp', BARE, 32)
  const addedP50 = get('vmcp', 1).p50Ms - get('direct', 1).p50Ms
  const bareAddedP50 = get(BARE, 1).p50Ms - get('direct', 1).p50Ms
  const cpu = (c: number) => get('vmcp', c).serverCpuUsPerCall / get(BARE, c).serverCpuUsPerCall
  const jwtCost = (c: number) => {
    const r = versus('vmcp+jwt', 'vmcp', c)
    const pct = (n: number) => round((1 - n) * 100, 1)
    return { raw: (1 - r.ratio) * 100, value: `${pct(r.ratio)} % (95 % ${pct(r.high)}–${pct(r.low)} %)` }
  }
  const kb = memory.perSessionBytes / 1024
  const target = (name: string, value: string, raw: number, goal: string, pass: boolean) => {
    return { name, value, raw, goal, pass }
  }
  return [
    target('vmcp throughput vs bare relay (c=32)', ratioText(bare32), bare32.ratio, '≥ 0.9×', bare32.ratio >= 0.9),
    target('vmcp throughput vs direct (c=32)', ratioText(direct32), direct32.ratio, '≥ 0.75×', direct32.ratio >= 0.75),
    target(
      'added p50 latency (c=1)',
      `${round(addedP50, 3)} ms (bare relay ${round(bareAddedP50, 3)} ms)`,
      addedP50,
      '≤ 0.6 ms',
      addedP50 <= 0.6,
    ),
    ...CONCURRENCY.map((c) =>
      target(`vmcp CPU per call vs bare relay (c=${c})`, `${round(cpu(c))}×`, cpu(c), '≤ 1.5×', cpu(c) <= 1.5),
    ),
    ...CONCURRENCY.map((c) => {
      const cost = jwtCost(c)
      return target(`JWT validation throughput cost (c=${c})`, cost.value, cost.raw, '< 5 %', cost.raw < 5)
    }),
    target('RSS per idle session (1,000 sessions)', `${round(kb, 1)} KB`, kb, '< 50 KB', kb < 50),
    ...[32, 1].map((c) => {
      const r = versus(MODE_B, 'vmcp+jwt', c)
      return target(
        `Mode B throughput vs Mode A vmcp+jwt (c=${c})`,
        ratioText(r),
        r.ratio,
        `≥ ${MODE_B_MIN_RATIO}× (within 10 %)`,
        r.ratio >= MODE_B_MIN_RATIO,
      )
    }),
  ]
}

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n')
}

function report(
  calls: CallRun[],
  list: LatencySummary & { tools: number; backends: number },
  memory: Awaited<ReturnType<typeof benchMemory>>,
  token: Awaited<ReturnType<typeof benchToken>>,
  targets: Targets,
  load1: number,
  steal: number,
) {
  const cpuRatios = modeBRatios(calls, 'serverCpuUsPerCall')
  const us = (n: number) => Math.round(n)
  const ms = (n: number) => round(n, 3).toFixed(3)
  const busy = load1 > cpus().length / 2
  const out = [
    `## vmcp bench: node ${process.version}, ${cpus().length} cores, ${SECONDS} s per run in ${roundsFor(SECONDS)} turns of ${TURN_MS} ms, ` +
      `load average ${load1.toFixed(2)} at start, steal ${round(steal * 100, 1)} % during the tools/call rows`,
    '',
    ...(busy ? ['> ⚠ the host was busy at start: throughput and latency are skewed.', ''] : []),
    '### tools/call (echo), one MCP session (2026-07-28: one stateless caller) per worker',
    '',
    table(
      ['path', 'concurrency', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU µs/call'],
      calls.map((r) => {
        const row = [r.target, r.concurrency, Math.round(r.rps), ms(r.p50Ms), ms(r.p99Ms), r.errors]
        return [...row, us(r.serverCpuUsPerCall)]
      }),
    ),
    '',
    `Mode B / Mode A (vmcp+jwt) throughput: ` +
      CONCURRENCY.map((c) => `c=${c} ${ratioText(rowRatio(calls, MODE_B, 'vmcp+jwt', c))}`).join(', ') +
      ` (target ≥ ${MODE_B_MIN_RATIO}×); server CPU per call: ` +
      CONCURRENCY.map((c) => `c=${c} ${round(cpuRatios[`c${c}`] ?? NaN)}×`).join(', '),
    '',
    `2026-07-28 stateless, vmcp / direct throughput: ` +
      CONCURRENCY.map((c) => {
        const pick = (label: CallRun['target']) => findRow(calls, label, c)
        return `c=${c} ${round((pick(MODERN_VMCP)?.rps ?? NaN) / (pick(MODERN_DIRECT)?.rps ?? NaN))}×`
      }).join(', ') +
      '; to the 2026-07-28-only backend: ' +
      CONCURRENCY.map((c) => {
        const pick = (label: CallRun['target']) => findRow(calls, label, c)
        return `c=${c} ${round((pick(MODERN_ONLY_VMCP)?.rps ?? NaN) / (pick(MODERN_ONLY_DIRECT)?.rps ?? NaN))}×`
      }).join(', '),
    '',
    `2026-07-28 caller / 2025 session, server CPU per call through vmcp to the 2025 backend: ` +
      CONCURRENCY.map((c) => {
        const cpu = (label: CallRun['target']) => findRow(calls, label, c)?.serverCpuUsPerCall ?? NaN
        return `c=${c} ${round(cpu(MODERN_TO_2025) / cpu('vmcp'))}×`
      }).join(', '),
    '',
    '### Mode B /oauth/token, refresh_token grant (rotation: one chain per worker)',
    '',
    table(
      ['concurrency', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU µs/refresh'],
      token.runs.map((r) => {
        const row = [r.concurrency, Math.round(r.rps), ms(r.p50Ms), ms(r.p99Ms), r.errors]
        return [...row, us(r.serverCpuUsPerCall)]
      }),
    ),
    '',
    `Headless sign-in (authorize → upstream IdP → callback → code grant): ` +
      `${token.signIn.samples} sign-ins, p50 ${round(token.signIn.p50Ms, 1)} ms, ` +
      `max ${round(token.signIn.maxMs, 1)} ms`,
    '',
    `### tools/list through vmcp (${list.backends} backends, --tools ${LIST_TOOLS_PER_BACKEND}, c=1)`,
    '',
    table(
      ['tools returned', 'samples', 'p50 ms', 'p99 ms'],
      [[list.tools, list.samples, ms(list.p50Ms), ms(list.p99Ms)]],
    ),
    '',
    `### idle sessions (2 backends: stdio + HTTP)`,
    '',
    table(
      ['sessions', 'RSS before MB', 'RSS after MB', 'RSS / session KB', 'heap / session KB'],
      [
        [
          memory.sessions,
          round(memory.rssBeforeBytes / 2 ** 20, 1),
          round(memory.rssAfterBytes / 2 ** 20, 1),
          round(memory.perSessionBytes / 1024, 1),
          round(memory.heapPerSessionBytes / 1024, 1),
        ],
      ],
    ),
    '',
    '### targets',
    '',
    table(
      ['target', 'result', 'goal', ''],
      targets.map((t) => [t.name, t.value, t.goal, t.pass ? '✅ pass' : '❌ miss']),
    ),
    '',
  ]
  process.stdout.write(out.join('\n'))
}

async function main() {
  const started = performance.now()
  const loadBefore = loadavg()
  const ticksBefore = readHostTicks()
  const load = loadBefore.map((l) => l.toFixed(2)).join(' ')
  log(`${SECONDS} s per row in ${roundsFor(SECONDS)} interleaved rounds, after ${WARMUP_MS} ms warm-up per row; load average ${load}`)
  const backend = await startHttpBackend(BACKEND_NAME)
  children.push(backend)
  const modeBs = await startModeBs(backend, profileArgs)
  const [modeB] = modeBs
  const calls = await benchCalls(backend, modeBs)
  const callsSteal = stealShare(ticksBefore)
  log(`steal during the tools/call rows: ${round(callsSteal * 100, 1)} % of the host's CPU time`)
  if (CALLS_ONLY) {
    // The ratios the targets read, each with its interval: a quick before/after of the hot path.
    for (const c of CONCURRENCY) {
      for (const [a, b] of [['vmcp', BARE], ['vmcp', 'direct'], ['vmcp+jwt', 'vmcp'], [MODE_B, 'vmcp+jwt']] as const) {
        log(`c=${c} ${a} / ${b}: ${ratioText(rowRatio(calls.runs, a, b, c))}`)
      }
    }
    if (calls.profileDir && calls.pids) {
      writeProfileSummary(calls.profileDir, calls.pids.vmcp, calls.runs, loadBefore[0] ?? 0)
    }
    return
  }
  calls.runs.push(...(await benchModern()))
  const token = await benchToken(modeB)
  await stop(modeB.child)
  await idp?.close()
  idp = undefined
  const list = await benchList()
  const memory = await benchMemory(backend)
  const targets = evaluate(calls.runs, memory)
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemBytes: totalmem(),
    // Other work on the host skews every number: compare runs only at similar load.
    loadAverage: { before: loadBefore.map((l) => round(l)), after: loadavg().map((l) => round(l)) },
    // The hypervisor's share of the host CPU given to other guests (/proc/stat steal).
    stealShare: { callRows: round(callsSteal, 4), wholeRun: round(stealShare(ticksBefore), 4) },
    benchSeconds: SECONDS,
    turnMs: TURN_MS,
    warmupMs: WARMUP_MS,
    calls: { ...calls, runs: calls.runs.map((r) => roundAll(r)) },
    // Mode B: vmcp is its own authorization server (memory storage, one oidc upstream, the echo
    // backend behind upstream_inject). Its tools/call rows are in calls.runs under this target.
    modeB: {
      target: MODE_B,
      ratioVsModeA: roundAll(modeBRatios(calls.runs)),
      // Server CPU per call, Mode B over Mode A: above 1 means Mode B costs more per call.
      cpuPerCallRatioVsModeA: roundAll(modeBRatios(calls.runs, 'serverCpuUsPerCall')),
      minRatio: MODE_B_MIN_RATIO,
      signIn: roundAll(token.signIn),
      idpLogins: token.idpLogins,
    },
    tokenEndpoint: {
      grant: 'refresh_token',
      runs: token.runs.map((r) => roundAll(r)),
      resignIns: token.resignIns,
    },
    list: roundAll(list),
    memory: roundAll(memory),
    targets: targets.map((t) => ({ ...t, raw: round(t.raw, 4) })),
    totalSeconds: round((performance.now() - started) / 1000, 1),
  }
  mkdirSync(resolve(ROOT, 'bench'), { recursive: true })
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`)
  report(calls.runs, list, memory, token, targets, loadBefore[0] ?? 0, callsSteal)
  log(`wrote ${RESULTS} in ${results.totalSeconds} s`)
  if (calls.profileDir && calls.pids) {
    const { vmcp: plain, modeB: b } = calls.pids
    log(`CPU profiles of the vmcp (pid ${plain}) and Mode B (pid ${b}) children in ${calls.profileDir}`)
    writeProfileSummary(calls.profileDir, plain, calls.runs, loadBefore[0] ?? 0)
  }
}

/** bench/profile-summary.md: where the vmcp child's CPU went during the tools/call runs. */
function writeProfileSummary(dir: string, pid: number, calls: CallRun[], load1: number) {
  const file = readdirSync(dir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile'))
  if (!file) return log(`no profile of pid ${pid} in ${dir}`)
  const rows = calls
    .filter((r) => r.target !== MODE_B)
    .map((r) => `| ${r.target} | ${r.concurrency} | ${Math.round(r.rps)} | ${Math.round(r.serverCpuUsPerCall)} |`)
  const text = [
    '# Where vmcp spends its CPU on tools/call',
    '',
    `\`npm run bench -- ${CALLS_ONLY ? '--calls ' : ''}--profile\` on ${new Date().toISOString().slice(0, 10)}: ` +
      `node ${process.version}, ${cpus().length} cores, load average ${load1.toFixed(2)} at start. The vmcp ` +
      'child (anonymous, one Streamable HTTP echo backend) ran under --cpu-prof for its c=1 and c=32 ' +
      'runs (its rows include the profiler; vmcp+jwt ran without); self time is charged to the ' +
      'innermost frame, idle left out. `writev` is the write of each reply and backend request: on ' +
      'loopback it carries the receiving TCP work, and on a loaded host the wall-clock sampler ' +
      'also charges it the time the process waited for a CPU, so compare the CPU µs/call column (from ' +
      '/proc), not that share. Re-run after changing the hot path.',
    '',
    '| path | concurrency | req/s | server CPU µs/call |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    '```',
    summarizeProfile(join(dir, file), 20).replace(/^\S*\.cpuprofile/, 'vmcp child'),
    '```',
    '',
  ].join('\n')
  writeFileSync(PROFILE_SUMMARY, text)
  log(`wrote ${PROFILE_SUMMARY}`)
}

function roundAll<T>(value: T): T {
  const json = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' ? round(v, 4) : v))
  return JSON.parse(json) as T
}

async function shutdown() {
  await Promise.allSettled([...children].reverse().map((c) => c.stop()))
  await jwks?.close()
  await idp?.close()
  if (!PROFILE) rmSync(tmp, { recursive: true, force: true })
}

process.once('SIGINT', () => {
  killAll()
  process.exit(130)
})
process.once('exit', killAll)

try {
  await main()
  await shutdown()
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  await shutdown()
  process.exitCode = 1
}
