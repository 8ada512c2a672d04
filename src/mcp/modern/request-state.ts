import { createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server'
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose'

/** What vmcp keeps in a `requestState` it hands to a 2026-07-28 client. */
export interface RequestStateClaims {
  /** The backend the retry goes back to. */
  backend: string
  /** The request it continues: method and the exposed name (tool, prompt) or URI. */
  method: string
  target: string
  /** The backend's own `requestState`, echoed to it unchanged on the retry. */
  state?: string
  /** A backend call held open in this process, and the round of input it waits for. */
  hold?: string
  round?: number
}

export interface RequestStateCodecOptions {
  /**
   * HMAC-SHA256 key (≥ 32 bytes), from {@link deriveRequestStateKey} when replicas share it;
   * a fresh random one per process when absent (a state then only opens where it was issued).
   */
  key?: Uint8Array
  /**
   * The server a state is for (`aud`): vmcp's public `/mcp` URL. Deployments that happen to
   * share key material still refuse each other's states.
   */
  audience: string
  /** How long a minted state stays valid, in seconds. */
  ttlSeconds: number
  /** Clock, in milliseconds (tests move it). */
  now?: () => number
}

/** Why an echoed `requestState` was refused; the message names it for the client. */
export type RequestStateFailure =
  | 'malformed'
  | 'signature'
  | 'expired'
  /** Sealed under the shared key, but for another deployment (another `aud`). */
  | 'audience'
  | 'caller'
  | 'request'
  /** It names a held call this process no longer has. */
  | 'gone'
  /** It continues a round that was already answered. */
  | 'stale'

export class RequestStateError extends ProtocolError {
  constructor(
    readonly reason: RequestStateFailure,
    message: string,
  ) {
    // The SDK's own requestState seam answers a refused state with -32602 (Invalid params).
    super(ProtocolErrorCode.InvalidParams, message, { reason })
    this.name = 'RequestStateError'
  }
}

const TYP = 'vmcp-request-state+jwt'

/**
 * The requestState key from shared material (`server.requestStateKey`, or Mode B's storage
 * encryption key): HKDF-SHA256 (RFC 5869) with a label of its own, so replicas configured alike
 * derive the same key while the material's other use (sealing records) gets an unrelated one.
 */
export function deriveRequestStateKey(material: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', material, new Uint8Array(0), 'vmcp requestState HS256 v1', 32))
}

/**
 * Seals vmcp's `requestState` for 2026-07-28 clients as a compact JWS (HS256) under a key only
 * vmcp holds. MCP 2026-07-28 §Multi Round-Trip Requests: requestState comes back as
 * attacker-controlled input, so the server MUST protect its integrity and MUST reject state
 * that fails verification. Signed, not encrypted: nothing secret goes in it (the caller binding
 * is a keyed hash, never the identity itself).
 */
export class RequestStateCodec {
  readonly #key: Uint8Array
  readonly #audience: string
  readonly #ttl: number
  readonly #now: () => number

  constructor(options: RequestStateCodecOptions) {
    this.#key = options.key ?? randomBytes(32)
    if (this.#key.length < 32) throw new RangeError('requestState key must be at least 32 bytes')
    this.#audience = options.audience
    this.#ttl = options.ttlSeconds
    this.#now = options.now ?? Date.now
  }

  get ttlSeconds(): number {
    return this.#ttl
  }

  /** Seals the claims for the caller identified by `callerKey`. */
  async mint(claims: RequestStateClaims, callerKey: string): Promise<string> {
    const now = Math.floor(this.#now() / 1000)
    const body: Record<string, unknown> = {
      b: claims.backend,
      m: claims.method,
      n: claims.target,
      u: this.#bind(callerKey),
    }
    if (claims.state !== undefined) body.s = claims.state
    if (claims.hold !== undefined) body.h = claims.hold
    if (claims.round !== undefined) body.r = claims.round
    return new SignJWT(body)
      .setProtectedHeader({ alg: 'HS256', typ: TYP })
      .setAudience(this.#audience)
      .setIssuedAt(now)
      .setExpirationTime(now + this.#ttl)
      .sign(this.#key)
  }

  /**
   * Opens an echoed state for `callerKey` retrying `method` on `target`; throws a
   * {@link RequestStateError} naming the reason otherwise.
   */
  async open(
    token: string,
    callerKey: string,
    method: string,
    target: string,
  ): Promise<RequestStateClaims> {
    let payload: Record<string, unknown>
    try {
      ;({ payload } = await jwtVerify(token, this.#key, {
        algorithms: ['HS256'],
        typ: TYP,
        currentDate: new Date(this.#now()),
        // RFC 7519 §4.1.3: a state for another audience (deployment) is rejected.
        audience: this.#audience,
        requiredClaims: ['exp', 'aud'],
      }))
    } catch (err) {
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud')
        throw new RequestStateError('audience', 'requestState was issued for another server')
      if (err instanceof joseErrors.JWTExpired)
        throw new RequestStateError(
          'expired',
          'requestState has expired; send the request again without it',
        )
      if (err instanceof joseErrors.JWSSignatureVerificationFailed)
        throw new RequestStateError(
          'signature',
          'requestState failed verification (it was altered or not issued by this server)',
        )
      throw new RequestStateError('malformed', 'requestState is malformed')
    }
    // The binding is a keyed hash of the caller: a state minted for one identity is refused
    // for another (MCP 2026-07-28 §Multi Round-Trip Requests, state bound to its user).
    if (payload.u !== this.#bind(callerKey))
      throw new RequestStateError('caller', 'requestState was issued to another caller')
    if (payload.m !== method || payload.n !== target)
      throw new RequestStateError(
        'request',
        `requestState belongs to another request, not ${method} ${target}`,
      )
    const { b, s, h, r } = payload
    if (typeof b !== 'string') throw new RequestStateError('malformed', 'requestState is malformed')
    return {
      backend: b,
      method,
      target,
      ...(typeof s === 'string' ? { state: s } : {}),
      ...(typeof h === 'string' ? { hold: h } : {}),
      ...(typeof r === 'number' ? { round: r } : {}),
    }
  }

  #bind(callerKey: string): string {
    return createHmac('sha256', this.#key)
      .update(`vmcp.requestState.caller:${callerKey}`)
      .digest('base64url')
      .slice(0, 22)
  }
}
