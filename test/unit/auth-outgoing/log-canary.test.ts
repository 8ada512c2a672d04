import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOutgoingAuth, type OutgoingAuthStrategy } from '../../../src/auth/outgoing/index.js'
import { createLogger, fingerprint, Secret } from '../../../src/log/index.js'
import { createOutboundFetch } from '../../../src/net/index.js'
import {
  ACCESS_TOKEN_TYPE,
  identityFor,
  startTokenEndpoint,
  type TokenEndpoint,
} from './token-endpoint.js'

// Distinctive values so any leak, whole, is easy to spot in the captured log.
const CLIENT_SECRET = 'CANARY-client-secret-7f3a9c'
const SUBJECT_TOKEN = 'CANARY-subject-token-1b2c3d'
const BAD_SUBJECT_TOKEN = 'CANARY-bad-subject-token-4e5f'
const ISSUED_TOKEN = 'CANARY-issued-token-9d8e7f'
const HEADER_SECRET = 'CANARY-header-value-5a6b'
const UPSTREAM_TOKEN = 'CANARY-upstream-token-2c3d'
const SECRETS = [
  CLIENT_SECRET,
  SUBJECT_TOKEN,
  BAD_SUBJECT_TOKEN,
  ISSUED_TOKEN,
  HEADER_SECRET,
  UPSTREAM_TOKEN,
]

let endpoint: TokenEndpoint
const lines: string[] = []
const sink = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    lines.push(chunk.toString('utf8'))
    callback()
  },
})
const logger = createLogger({ level: 'trace', destination: sink })

beforeAll(async () => {
  endpoint = await startTokenEndpoint({
    clientId: 'vmcp',
    clientSecret: CLIENT_SECRET,
    subjectTokens: [SUBJECT_TOKEN],
    reply: (params) =>
      params.get('subject_token') === SUBJECT_TOKEN
        ? {
            status: 200,
            body: {
              access_token: ISSUED_TOKEN,
              issued_token_type: ACCESS_TOKEN_TYPE,
              token_type: 'Bearer',
              expires_in: 300,
            },
          }
        : { status: 400, body: { error: 'invalid_grant' } },
  })
})

afterAll(async () => {
  await endpoint.close()
})

describe('log canary (trace level)', () => {
  it('no token or secret reaches the log', async () => {
    const options = { backend: 'alpha', logger, fetch: createOutboundFetch() }
    const exchange: OutgoingAuthStrategy = createOutgoingAuth(
      {
        type: 'token_exchange',
        tokenExchange: {
          tokenUrl: endpoint.url,
          clientId: 'vmcp',
          clientSecret: new Secret(CLIENT_SECRET),
          audience: 'https://backend.example.com',
          scopes: ['tools:read'],
          subjectTokenType: ACCESS_TOKEN_TYPE,
        },
      },
      options,
    )
    const caller = {
      ...identityFor('alice', SUBJECT_TOKEN),
      upstreamTokens: { github: new Secret(UPSTREAM_TOKEN) },
    }

    // Exchange, single-flight joiners, cache hit.
    await Promise.all(Array.from({ length: 3 }, () => exchange.headers(caller)))
    expect(await exchange.headers(caller)).toEqual({ Authorization: `Bearer ${ISSUED_TOKEN}` })
    // Token endpoint error: the error goes into the log the way a caller would log it.
    const err = await exchange.headers(identityFor('eve', BAD_SUBJECT_TOKEN)).then(
      () => undefined,
      (e: unknown) => e,
    )
    logger.error({ err, identity: caller }, 'backend call failed')
    // Unreachable endpoint: the network error travels as `cause`.
    const closed = await startTokenEndpoint({ clientId: 'x', clientSecret: 'y', subjectTokens: [] })
    await closed.close()
    const unreachable = createOutgoingAuth(
      {
        type: 'token_exchange',
        tokenExchange: {
          tokenUrl: closed.url,
          clientId: 'vmcp',
          clientSecret: new Secret(CLIENT_SECRET),
          scopes: [],
          subjectTokenType: ACCESS_TOKEN_TYPE,
        },
      },
      options,
    )
    const netErr = await unreachable.headers(caller).then(
      () => undefined,
      (e: unknown) => e,
    )
    logger.error({ err: netErr }, 'backend call failed')

    const header = createOutgoingAuth(
      {
        type: 'header_injection',
        headerInjection: { headers: { 'X-K': new Secret(HEADER_SECRET), 'X-L': new Secret(`Key ${HEADER_SECRET}`) } },
      },
      options,
    )
    const upstream = createOutgoingAuth(
      { type: 'upstream_inject', upstreamInject: { providerName: 'github' } },
      options,
    )
    // The strategies themselves log nothing here. Their header maps are not logged on purpose:
    // pino redacts `authorization` by key, but a custom header_injection name it cannot know.
    await header.headers(caller)
    await upstream.headers(caller)

    const log = lines.join('')
    // Not vacuous: the flows logged, with fingerprints for correlation.
    expect(log).toContain('token exchange performed')
    expect(log).toContain('token exchange cache hit')
    expect(log).toContain('token exchange failed')
    expect(log).toContain('invalid_grant')
    expect(log).toContain(fingerprint(ISSUED_TOKEN))
    expect(log).toContain(fingerprint(SUBJECT_TOKEN))
    for (const secret of SECRETS) expect(log).not.toContain(secret)
  })
})
