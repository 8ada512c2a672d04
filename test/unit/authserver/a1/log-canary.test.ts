import { describe, expect, it } from 'vitest'
import { basic, createHarness, logSink, newVerifier, REDIRECT_URI } from './helpers.js'

// Every A1 flow at trace level into one in-memory sink; afterwards no code, verifier, client
// secret, access or refresh token may appear anywhere in it (revocation requests included).
describe('log canary (A1)', () => {
  it('no code, verifier, secret or token reaches the log at trace level', async () => {
    const sink = logSink()
    const h = await createHarness({ sink })
    const secrets: string[] = []

    // Registration, public and confidential (the secret is in the response only).
    const reg = await h.registerApp.request('/oauth/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: [REDIRECT_URI],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    })
    const { client_id: confId, client_secret: confSecret } = (await reg.json()) as {
      client_id: string
      client_secret: string
    }
    secrets.push(confSecret)
    const { client } = await h.register()

    // Code exchange, refresh rotation, reuse (revocation), code replay.
    const { code, verifier } = await h.issueCode(client)
    secrets.push(code, verifier)
    const params = {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      client_id: client.clientId,
    }
    const first = (await (await h.token(params)).json()) as {
      access_token: string
      refresh_token: string
    }
    secrets.push(first.access_token, first.refresh_token)
    const second = (await (
      await h.token({
        grant_type: 'refresh_token',
        refresh_token: first.refresh_token,
        client_id: client.clientId,
      })
    ).json()) as {
      access_token: string
      refresh_token: string
    }
    secrets.push(second.access_token, second.refresh_token)
    await h.token({
      grant_type: 'refresh_token',
      refresh_token: first.refresh_token,
      client_id: client.clientId,
    })
    await h.token(params)

    // Failures: wrong verifier, wrong secret (Basic and post), storage outage.
    const next = await h.issueCode(client)
    secrets.push(next.code, next.verifier)
    const wrongVerifier = newVerifier()
    secrets.push(wrongVerifier)
    await h.token({ ...params, code: next.code, code_verifier: wrongVerifier })
    const conf = (await h.clients.getClient(confId))!
    const confCode = await h.issueCode(conf)
    secrets.push(confCode.code, confCode.verifier)
    const confParams = {
      grant_type: 'authorization_code',
      code: confCode.code,
      code_verifier: confCode.verifier,
      redirect_uri: REDIRECT_URI,
    }
    const wrongSecret = 'CANARY-wrong-secret-0123456789'
    secrets.push(wrongSecret)
    await h.token(confParams, { authorization: basic(confId, wrongSecret) })
    await h.token({ ...confParams, client_id: confId, client_secret: wrongSecret })
    const ok = (await (
      await h.token(confParams, { authorization: basic(confId, confSecret) })
    ).json()) as {
      access_token: string
      refresh_token: string
    }
    secrets.push(ok.access_token, ok.refresh_token)

    // Revocation (RFC 7009): another client's token, an access token, a refresh token, junk,
    // and a wrong secret.
    const third = await h.issueCode(client)
    secrets.push(third.code, third.verifier)
    const t3 = (await (
      await h.token({ ...params, code: third.code, code_verifier: third.verifier })
    ).json()) as { access_token: string; refresh_token: string }
    secrets.push(t3.access_token, t3.refresh_token)
    const withNonce = await h.issueCode(client, { scope: 'openid email', nonce: 'CANARY-nonce-0123456789' })
    secrets.push(withNonce.code, withNonce.verifier, 'CANARY-nonce-0123456789')
    const t4 = (await (
      await h.token({ ...params, code: withNonce.code, code_verifier: withNonce.verifier })
    ).json()) as { access_token: string; refresh_token: string; id_token: string }
    expect(t4.id_token).toBeDefined()
    secrets.push(t4.access_token, t4.refresh_token, t4.id_token)
    await h.revoke({ token: t4.id_token, client_id: client.clientId })
    const confAuth = { authorization: basic(confId, confSecret) }
    await h.revoke({ token: t3.refresh_token }, confAuth)
    await h.revoke({ token: t3.access_token, client_id: client.clientId })
    await h.revoke({ token: t3.refresh_token, client_id: client.clientId })
    await h.revoke({ token: 'CANARY-not-a-token-0123456789', client_id: client.clientId })
    secrets.push('CANARY-not-a-token-0123456789')
    await h.revoke({ token: ok.access_token }, { authorization: basic(confId, wrongSecret) })
    expect(sink.records().some((r) => r.msg === 'token revocation request')).toBe(true)

    h.store.down = true
    await h.token(
      { grant_type: 'refresh_token', refresh_token: ok.refresh_token },
      { authorization: basic(confId, confSecret) },
    )

    const log = sink.lines.join('\n')
    expect(sink.lines.length).toBeGreaterThan(5)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(10)
      expect(log).not.toContain(secret)
    }
  })
})
