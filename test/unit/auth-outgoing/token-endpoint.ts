// A tiny RFC 8693 token endpoint on 127.0.0.1 for the token exchange tests: real HTTP, real
// client authentication, and a request counter so tests can prove caching and single-flight.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Secret } from '../../../src/log/index.js'
import type { Identity } from '../../../src/auth/incoming/identity.js'

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

export interface TokenReply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

export interface TokenEndpointOptions {
  clientId: string
  clientSecret: string
  /** Subject tokens the endpoint accepts; anything else gets `invalid_grant`. */
  subjectTokens: Iterable<string>
  audience?: string
  scope?: string
  /** Replaces the default success answer; `n` counts accepted requests from 1. */
  reply?: (params: URLSearchParams, n: number) => TokenReply | Promise<TokenReply>
}

export interface TokenEndpoint {
  url: string
  /** Every POST that reached the endpoint, valid or not. */
  readonly requests: URLSearchParams[]
  /** Holds every answer until `release()`; lets a test pile up concurrent callers first. */
  hold(): void
  release(): void
  close(): Promise<void>
}

const oauthError = (status: number, error: string, error_description: string): TokenReply => ({
  status,
  body: { error, error_description },
})

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded inside the Basic credentials. */
function parseBasic(header: string | undefined): [string, string] | undefined {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '')
  if (!m?.[1]) return undefined
  const decoded = Buffer.from(m[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
  return [dec(decoded.slice(0, colon)), dec(decoded.slice(colon + 1))]
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function startTokenEndpoint(options: TokenEndpointOptions): Promise<TokenEndpoint> {
  const subjectTokens = new Set(options.subjectTokens)
  const requests: URLSearchParams[] = []
  let accepted = 0
  let gate: { promise: Promise<void>; open: () => void } | undefined

  async function answer(req: IncomingMessage): Promise<TokenReply> {
    if (req.method !== 'POST' || req.url !== '/token') return oauthError(404, 'not_found', 'no')
    const params = new URLSearchParams(await readBody(req))
    requests.push(params)
    if (gate) await gate.promise
    if (!req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
      return oauthError(400, 'invalid_request', 'form body expected')
    }
    const creds = parseBasic(req.headers.authorization)
    if (!creds || creds[0] !== options.clientId || creds[1] !== options.clientSecret) {
      return {
        ...oauthError(401, 'invalid_client', 'client authentication failed'),
        headers: { 'www-authenticate': 'Basic realm="token"' },
      }
    }
    if (params.get('grant_type') !== TOKEN_EXCHANGE_GRANT) {
      return oauthError(400, 'unsupported_grant_type', 'token exchange only')
    }
    if (params.get('subject_token_type') !== ACCESS_TOKEN_TYPE) {
      return oauthError(400, 'invalid_request', 'subject_token_type')
    }
    if (options.audience !== undefined && params.get('audience') !== options.audience) {
      return oauthError(400, 'invalid_target', 'audience')
    }
    if (options.scope !== undefined && params.get('scope') !== options.scope) {
      return oauthError(400, 'invalid_scope', 'scope')
    }
    const subject = params.get('subject_token') ?? ''
    if (!subjectTokens.has(subject)) {
      return oauthError(400, 'invalid_grant', 'subject token is not valid')
    }
    accepted += 1
    if (options.reply) return options.reply(params, accepted)
    return {
      status: 200,
      body: {
        access_token: `backend-token-${accepted}`,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: 300,
      },
    }
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    answer(req).then(
      ({ status, body, headers }) => {
        const text = typeof body === 'string' ? body : JSON.stringify(body)
        res.writeHead(status, {
          'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
          'cache-control': 'no-store',
          ...headers,
        })
        res.end(text)
      },
      (err: unknown) => {
        res.writeHead(500).end(String(err))
      },
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}/token`,
    requests,
    hold() {
      let open!: () => void
      const promise = new Promise<void>((resolve) => (open = resolve))
      gate = { promise, open }
    },
    release() {
      gate?.open()
      gate = undefined
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        gate?.open()
        if (!server.listening) return resolve()
        server.closeAllConnections()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}

/** A verified caller as incoming auth would produce it. */
export function identityFor(
  subject: string,
  token: string,
  claims: Record<string, unknown> = {},
): Identity {
  return {
    subject,
    issuer: 'https://idp.example.com',
    claims: { sub: subject, ...claims },
    token: new Secret(token),
    upstreamTokens: {},
  }
}
