// The floor for a relaying hop, measured beside vmcp in `npm run bench`: node:http in front of an
// undici Pool to one MCP backend. It rewrites only the tool name (drops the `bench_` prefix vmcp
// adds), passes the session headers through, and answers in one write with content-length (an SSE
// reply is reduced to its one data line). No auth, no sessions of its own, no MCP semantics.
//   node dist/bench/bare-relay.js <backend MCP URL>   → prints {"url": "http://127.0.0.1:PORT/mcp"}
import { createServer } from 'node:http'
import { Pool } from 'undici'

const target = new URL(process.argv[2] ?? '')
const pool = new Pool(target.origin, { connections: 64, keepAliveTimeout: 60_000 })
const PASS = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']
const PREFIX = 'bench_'

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    let body = Buffer.concat(chunks).toString('utf8')
    if (body.includes('"tools/call"')) {
      const msg = JSON.parse(body) as { params?: { name?: string } }
      if (msg.params?.name?.startsWith(PREFIX)) msg.params.name = msg.params.name.slice(PREFIX.length)
      body = JSON.stringify(msg)
    }
    const headers: Record<string, string> = {}
    for (const h of PASS) {
      const v = req.headers[h]
      if (typeof v === 'string') headers[h] = v
    }
    pool
      .request({ path: target.pathname, method: req.method as 'POST', headers, body: req.method === 'GET' ? null : body })
      .then(async (up) => {
        let text = await up.body.text()
        let type = String(up.headers['content-type'] ?? 'application/json')
        if (type.startsWith('text/event-stream')) {
          const data = text.split('\n').find((l) => l.startsWith('data:'))
          if (data) {
            text = data.slice(5).trim()
            type = 'application/json'
          }
        }
        const out: Record<string, string | number> = { 'content-type': type, 'content-length': Buffer.byteLength(text) }
        const sid = up.headers['mcp-session-id']
        if (typeof sid === 'string') out['mcp-session-id'] = sid
        res.writeHead(up.statusCode, out)
        res.end(text)
      })
      .catch((err: Error) => {
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end(err.message)
      })
  })
})

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
