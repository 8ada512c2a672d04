import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { TEST_BACKEND } from '../support/backends.js'
import { freePort } from '../support/http.js'
import { startVmcp } from '../support/vmcp.js'

interface Status {
  backends: Array<{ name: string; health: string; error?: string; restarts: number }>
}

const backendStatus = async (base: string, name: string) => {
  const s = (await (await fetch(`${base}/status`)).json()) as Status
  return s.backends.find((b) => b.name === name)
}

// A long discovery deadline: a start that returns proves the failure was reported at once.
const PATIENT = { discoveryTimeout: '5m' }

describe('backend failures show their real cause', () => {
  it('a stdio backend whose script is missing: its stderr is the reason in /status and the log', async () => {
    const gw = await startVmcp({
      backends: [{ name: 'ghost', transport: 'stdio', command: process.execPath, args: ['/nonexistent/server.mjs'] }],
      operational: PATIENT,
    })
    try {
      const ghost = await backendStatus(gw.base, 'ghost')
      expect(ghost?.health).toBe('unhealthy')
      expect(ghost?.error).toMatch(/Cannot find module '\/nonexistent\/server\.mjs'/)
      expect(gw.logs.some((l) => l.includes('backend unavailable') && l.includes('Cannot find module'))).toBe(true)
    } finally {
      await gw.close()
    }
  })

  it('a launch command that does not exist fails fast with the spawn error', async () => {
    const port = await freePort()
    const gw = await startVmcp({
      backends: [
        {
          name: 'nocmd',
          transport: 'streamable-http',
          url: `http://127.0.0.1:${port}/mcp`,
          launch: { command: 'vmcp-no-such-command', args: [] },
        },
      ],
      operational: PATIENT,
    })
    try {
      const b = await backendStatus(gw.base, 'nocmd')
      expect(b?.health).toBe('unhealthy')
      expect(b?.error).toMatch(/^launch failed: spawn vmcp-no-such-command ENOENT/)
      expect(b?.restarts).toBeGreaterThanOrEqual(1)
    } finally {
      await gw.close()
    }
  })

  it('a launched process whose port is taken: "port N is in use (pid P)", not a restart loop', async () => {
    const squatter = createServer()
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve))
    const port = (squatter.address() as { port: number }).port
    const gw = await startVmcp({
      backends: [
        {
          name: 'web',
          transport: 'streamable-http',
          url: `http://127.0.0.1:${port}/mcp`,
          launch: { command: process.execPath, args: [TEST_BACKEND, '--transport', 'http', '--port', String(port)] },
        },
      ],
      operational: PATIENT,
    })
    try {
      const b = await backendStatus(gw.base, 'web')
      expect(b?.health).toBe('unhealthy')
      // This test process is the one listening there.
      expect(b?.error).toBe(`port ${port} is in use (pid ${process.pid})`)
      expect(gw.logs.some((l) => l.includes('launched backend process'))).toBe(false)
    } finally {
      await gw.close()
      squatter.close()
    }
  })

  it('a launched process that exits: its last stderr lines are the reason', async () => {
    const port = await freePort()
    const gw = await startVmcp({
      backends: [
        {
          name: 'dies',
          transport: 'streamable-http',
          url: `http://127.0.0.1:${port}/mcp`,
          launch: { command: process.execPath, args: ['-e', 'console.error("config key FOO missing"); process.exit(3)'] },
        },
      ],
      operational: PATIENT,
    })
    try {
      const b = await backendStatus(gw.base, 'dies')
      expect(b?.health).toBe('unhealthy')
      expect(b?.error).toBe('launched process exited (3): config key FOO missing')
    } finally {
      await gw.close()
    }
  })
})
