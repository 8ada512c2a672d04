#!/usr/bin/env node
// npm run demo:mode-b: the bundled development IdP plus vmcp on vmcp.modeb.example.yaml.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const secret = process.env.DEV_IDP_CLIENT_SECRET ?? 'dev-secret-change-me'
const env = { ...process.env, DEV_IDP_CLIENT_SECRET: secret }

const idp = spawn(process.execPath, ['fixtures/idp/dev-idp.mjs', '--port', '4499'], {
  cwd: root,
  env,
  stdio: ['ignore', 'pipe', 'inherit'],
})
await new Promise((resolve, reject) => {
  createInterface({ input: idp.stdout }).once('line', resolve)
  idp.once('exit', (code) => reject(new Error(`dev IdP exited (${code})`)))
})
const vmcp = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '--config', 'vmcp.modeb.example.yaml'], {
  cwd: root,
  env,
  stdio: 'inherit',
})
process.stderr.write(
  '\nMode B demo: connect an OAuth-capable MCP client to http://127.0.0.1:4483/mcp\n' +
    '  e.g. npx @modelcontextprotocol/inspector  (transport Streamable HTTP)\n' +
    "  approve the client on vmcp's consent page, then sign in at the dev IdP with any username\n" +
    '  and password; Ctrl-C stops both.\n\n',
)
const stop = () => {
  vmcp.kill('SIGTERM')
  idp.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
vmcp.once('exit', (code) => {
  idp.kill('SIGTERM')
  process.exitCode = code ?? 0
})
