/**
 * Every process vmcp started (launched HTTP backends, stdio backends), so that none outlives vmcp.
 * An orderly shutdown stops them one by one with a grace period; this is the last line for the
 * exits that skip it (the CLI's hard shutdown deadline, a second signal): on `process.exit` every
 * child still alive gets SIGKILL, synchronously, before vmcp is gone.
 */
const alive = new Set<number>()
let hooked = false

/** Remembers a started process until `forgetChild`; returns `forgetChild` for it. */
export function trackChild(pid: number): () => void {
  alive.add(pid)
  if (!hooked) {
    hooked = true
    process.on('exit', killAllChildren)
  }
  return () => forgetChild(pid)
}

export function forgetChild(pid: number): void {
  alive.delete(pid)
}

/** SIGKILL to every tracked child still alive (a child that already exited is skipped). */
export function killAllChildren(): void {
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  alive.clear()
}
