// Preloaded into the vmcp child for the memory benchmark (`node --expose-gc --import …`): on
// SIGUSR2 it runs a full GC and prints one `{"bench":"memory",…}` line on stderr, so RSS is read
// after garbage from session setup is gone. vmcp itself is not modified.
process.on('SIGUSR2', () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  const line = {
    bench: 'memory',
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  }
  process.stderr.write(`${JSON.stringify(line)}\n`)
})

export {}
