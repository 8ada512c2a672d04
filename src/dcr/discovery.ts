import * as oauth from 'oauth4webapi'
import { discoveryTarget } from './cache-key.js'
import { DcrError } from './errors.js'
import { requestOptions, toDcrError, type DcrHttp } from './http.js'

/**
 * RFC 8414 discovery of `discoveryUrl` with oauth4webapi. An issuer URL is tried at the RFC 8414
 * §3.1 path-inserted well-known URL, then at the OpenID Connect form; a metadata URL is fetched as
 * given. Metadata naming another issuer is rejected (RFC 8414 §3.3), with no further fallback.
 */
export async function discoverServer(
  discoveryUrl: string,
  http: DcrHttp,
): Promise<oauth.AuthorizationServer> {
  const target = discoveryTarget(discoveryUrl)
  const issuer = new URL(target.issuer)
  const attempts: Array<{ url: string; send: () => Promise<Response> }> = target.metadataUrl
    ? [
        {
          url: target.metadataUrl,
          send: () =>
            http.fetch(target.metadataUrl as string, {
              headers: { accept: 'application/json' },
              signal: AbortSignal.timeout(http.timeoutMs),
            }),
        },
      ]
    : (['oauth2', 'oidc'] as const).map((algorithm) => ({
        url: wellKnownUrl(issuer, algorithm),
        send: () => oauth.discoveryRequest(issuer, { algorithm, ...requestOptions(http, issuer) }),
      }))
  let last: DcrError | undefined
  for (const attempt of attempts) {
    let response: Response
    try {
      response = await attempt.send()
    } catch (err) {
      throw toDcrError('discovery', 'discovery', attempt.url, err, http.timeoutMs)
    }
    // Only "not here" moves on to the next form; anything the server did answer is its answer.
    if (response.status === 404 && attempt !== attempts[attempts.length - 1]) {
      await response.body?.cancel()
      last = new DcrError('discovery', `discovery at ${attempt.url} answered HTTP 404`, {
        status: 404,
      })
      continue
    }
    let as: oauth.AuthorizationServer
    try {
      as = await oauth.processDiscoveryResponse(issuer, response)
    } catch (err) {
      if (
        err instanceof oauth.OperationProcessingError &&
        err.code === oauth.JSON_ATTRIBUTE_COMPARISON
      ) {
        const body = (err.cause as { body?: { issuer?: unknown } } | undefined)?.body
        const got = typeof body?.issuer === 'string' ? body.issuer.slice(0, 200) : '(none)'
        // RFC 8414 §3.3: the issuer in the document must be the one it was fetched for.
        throw new DcrError(
          'discovery',
          `issuer mismatch (RFC 8414 §3.3) at ${attempt.url}: expected ${target.issuer}, got ${got}`,
        )
      }
      throw toDcrError('discovery', 'discovery', attempt.url, err, http.timeoutMs)
    }
    for (const field of ['authorization_endpoint', 'token_endpoint'] as const) {
      if (typeof as[field] !== 'string') {
        throw new DcrError('discovery', `metadata at ${attempt.url} has no ${field}`)
      }
    }
    return as
  }
  throw last ?? new DcrError('discovery', `no metadata found for ${target.issuer}`)
}

function wellKnownUrl(issuer: URL, algorithm: 'oauth2' | 'oidc'): string {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '')
  return algorithm === 'oauth2'
    ? `${issuer.origin}/.well-known/oauth-authorization-server${path}`
    : `${issuer.origin}${path}/.well-known/openid-configuration`
}
