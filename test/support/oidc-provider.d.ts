// Minimal ambient typings for oidc-provider 9 (the package ships no .d.ts and there is no
// up-to-date @types package). Only what the test helpers use; internals stay loosely typed.
// Kept as a script file (no top-level import/export) so `declare module` is a declaration,
// not an augmentation.

declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  /** Koa context as seen by provider middlewares and grant handlers (loosely typed). */
  export interface KoaContextWithOIDC {
    // oidc-provider's per-request context (client, params, session, entities, ...)
    oidc: any
    path: string
    method: string
    status: number
    body: unknown
    type: string
    query: Record<string, string | string[] | undefined>
    [key: string]: any
  }

  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>

  export interface InteractionDetails {
    uid: string
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> }
    params: Record<string, unknown>
    session?: { accountId: string }
  }

  export interface Adapter {
    upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>
    find(id: string): Promise<Record<string, unknown> | undefined>
    destroy(id: string): Promise<void>
  }

  export interface AccessTokenModel {
    accountId?: string
    clientId?: string
    scope?: string
    jti: string
    exp?: number
    isValid: boolean
    isExpired: boolean
  }

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>)
    readonly issuer: string
    readonly Client: any
    readonly Grant: any
    readonly AccessToken: { find(value: string): Promise<AccessTokenModel | undefined> }
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    use(middleware: Middleware): this
    on(event: string, listener: (...args: any[]) => void): this
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>
    registerGrantType(
      name: string,
      handler: (ctx: KoaContextWithOIDC) => Promise<void>,
      params?: string | string[] | Set<string>,
      dupes?: string | string[] | Set<string>,
    ): void
  }

  export namespace errors {
    class OIDCProviderError extends Error {
      error: string
      error_description?: string
      status: number
      statusCode: number
      expose: boolean
    }
    class CustomOIDCProviderError extends OIDCProviderError {
      constructor(error: string, description?: string)
    }
    class InvalidRequest extends OIDCProviderError {
      constructor(description?: string, code?: number)
    }
    class InvalidGrant extends OIDCProviderError {
      constructor(detail?: string)
    }
    class InvalidClientAuth extends OIDCProviderError {
      constructor(detail?: string)
    }
    class InvalidScope extends OIDCProviderError {
      constructor(description: string, scope?: string)
    }
    class InvalidTarget extends OIDCProviderError {
      constructor(description?: string)
    }
    class InvalidClient extends OIDCProviderError {
      constructor(description?: string)
    }
    class UnauthorizedClient extends OIDCProviderError {
      constructor(description?: string)
    }
  }

  export default Provider
}

// Deep import (the package has no "exports" map): the in-memory adapter class, used with our own
// unbounded store (the default store is an LRU capped at 1000 entries and logs a warning).
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  export interface MemoryStore {
    get(key: string): any
    set(key: string, value: unknown, options?: { maxAge?: number }): unknown
    delete(key: string): boolean
  }
  export default class MemoryAdapter {
    constructor(model: string, store?: MemoryStore, clockTolerance?: number)
  }
}
