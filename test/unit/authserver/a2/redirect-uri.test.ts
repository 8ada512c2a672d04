import { describe, expect, it } from 'vitest'
import { matchRedirectUri } from '../../../../src/authserver/redirect-uri.js'

describe('OAuth 2.1 §2.3.1: exact string match', () => {
  const registered = ['https://app.example.com/cb', 'cursor://oauth/callback', 'https://app.example.com/cb?x=1']

  it('matches only identical strings', () => {
    expect(matchRedirectUri(registered, 'https://app.example.com/cb')).toBe(true)
    expect(matchRedirectUri(registered, 'cursor://oauth/callback')).toBe(true)
    expect(matchRedirectUri(registered, 'https://app.example.com/cb?x=1')).toBe(true)
  })

  it.each([
    ['prefix / extra path', 'https://app.example.com/cb/evil'],
    ['extra query', 'https://app.example.com/cb?next=https://evil.example'],
    ['path case folding', 'https://app.example.com/CB'],
    ['host case', 'https://APP.example.com/cb'],
    ['trailing slash', 'https://app.example.com/cb/'],
    ['explicit default port', 'https://app.example.com:443/cb'],
    ['fragment', 'https://app.example.com/cb#x'],
    ['other host', 'https://evil.example/cb'],
    ['dot segments', 'https://app.example.com/x/../cb'],
    ['http downgrade', 'http://app.example.com/cb'],
    ['userinfo', 'https://app.example.com@evil.example/cb'],
  ])('rejects %s', (_why, uri) => {
    expect(matchRedirectUri(registered, uri)).toBe(false)
  })

  it('a non-loopback https URI does not get any-port treatment', () => {
    expect(matchRedirectUri(registered, 'https://app.example.com:8443/cb')).toBe(false)
  })
})

describe('RFC 8252 §7.3: loopback redirect URIs, any port', () => {
  it.each([
    ['http://127.0.0.1/callback', 'http://127.0.0.1:51234/callback'],
    ['http://127.0.0.1:8080/callback', 'http://127.0.0.1:9/callback'],
    ['http://127.0.0.1:8080/callback', 'http://127.0.0.1/callback'],
    ['http://[::1]/cb', 'http://[::1]:4000/cb'],
    ['http://localhost/cb?a=b', 'http://localhost:3000/cb?a=b'],
    ['http://127.0.0.1', 'http://127.0.0.1:5000'],
  ])('%s accepts %s', (registered, requested) => {
    expect(matchRedirectUri([registered], requested)).toBe(true)
  })

  it.each([
    ['another path', 'http://127.0.0.1/callback', 'http://127.0.0.1:5000/other'],
    ['another query', 'http://127.0.0.1/callback?a=1', 'http://127.0.0.1:5000/callback?a=2'],
    ['a query added', 'http://127.0.0.1/callback', 'http://127.0.0.1:5000/callback?a=1'],
    ['path case', 'http://127.0.0.1/callback', 'http://127.0.0.1:5000/Callback'],
    ['localhost ≠ 127.0.0.1', 'http://127.0.0.1/callback', 'http://localhost:5000/callback'],
    ['[::1] ≠ 127.0.0.1', 'http://127.0.0.1/callback', 'http://[::1]:5000/callback'],
    ['another loopback address', 'http://127.0.0.1/callback', 'http://127.0.0.2:5000/callback'],
    ['https scheme', 'http://127.0.0.1/callback', 'https://127.0.0.1:5000/callback'],
    ['a fragment', 'http://127.0.0.1/callback', 'http://127.0.0.1:5000/callback#x'],
    ['userinfo', 'http://127.0.0.1/callback', 'http://evil@127.0.0.1:5000/callback'],
    ['port out of range', 'http://127.0.0.1/callback', 'http://127.0.0.1:70000/callback'],
    ['a trailing slash', 'http://127.0.0.1/callback', 'http://127.0.0.1:5000/callback/'],
    ['a registered non-loopback URI', 'http://127.0.0.1.evil.example/cb', 'http://127.0.0.1.evil.example:1/cb'],
  ])('rejects %s', (_why, registered, requested) => {
    expect(matchRedirectUri([registered], requested)).toBe(false)
  })
})
