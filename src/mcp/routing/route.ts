import type { Identity } from '../../auth/incoming/index.js'
import type { HttpBackendConfig } from '../../config/index.js'
import { revealAll } from '../../log/index.js'
import { routeResource, type AggregatedView } from '../aggregator.js'
import type { BackendConnection } from '../backend-connection.js'
import type { BackendRuntime } from '../backend-runtime.js'
import type { ListKind } from '../catalog.js'
import {
  buildPostHeaders,
  type RelayBackend,
  type RelayBackendSession,
  type RelayTarget,
} from '../relay/http-relay.js'
import type { RpcNotification } from './json-rpc.js'

/** A request/response method routed through a view: which backend, and the params it gets. */
export interface RoutedCall {
  backend: string
  /** The params as the backend names things (the tool or prompt name unprefixed). */
  params: Record<string, unknown>
}

/**
 * Where `tools/call`, `prompts/get`, `resources/read` or `completion/complete` goes in a view,
 * for either protocol era: the one routing decision behind 2025 sessions and 2026-07-28
 * callers. `undefined` when the view has no route (an unknown name, an unlisted URI, another
 * method): the caller then answers with its own error or takes the SDK path.
 */
export function routeCall(
  view: AggregatedView,
  method: string,
  params: Record<string, unknown>,
): RoutedCall | undefined {
  if (method === 'tools/call' || method === 'prompts/get') {
    const routes = method === 'tools/call' ? view.toolRoutes : view.promptRoutes
    const route = typeof params.name === 'string' ? routes.get(params.name) : undefined
    return route && { backend: route.backend, params: { ...params, name: route.name } }
  }
  if (method === 'resources/read') {
    const backend = typeof params.uri === 'string' ? routeResource(view, params.uri) : undefined
    return backend === undefined ? undefined : { backend, params }
  }
  if (method !== 'completion/complete') return undefined
  const ref = params.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined
  if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') {
    const route = view.promptRoutes.get(ref.name)
    return (
      route && { backend: route.backend, params: { ...params, ref: { ...ref, name: route.name } } }
    )
  }
  if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') {
    const uri = ref.uri
    const backend =
      view.templateRoutes.find((t) => t.uriTemplate === uri)?.backend ?? routeResource(view, uri)
    return backend === undefined ? undefined : { backend, params }
  }
  return undefined
}

/**
 * A backend the raw relay can serve now: Streamable HTTP, answering 2025 requests, and reachable
 * (else: the SDK path). A 2026-07-28-only backend is spoken to through the v2 client
 * (modern/backend-link.ts); so is a dual-era one whenever the call may need input.
 */
export function isRelayable(runtime: BackendRuntime | undefined): runtime is BackendRuntime {
  if (!runtime || runtime.config.transport !== 'streamable-http' || !runtime.servesLegacy)
    return false
  return runtime.health === 'healthy' || runtime.health === 'per-user'
}

/** How one client (a 2025 session, or a 2026-07-28 caller) reaches a backend through the relay. */
export interface RelayLink {
  /** The client's latest verified identity: refreshed tokens reach the backend at once. */
  identity(): Identity
  /** The client's connection to the backend, opened when needed. */
  connection(): Promise<BackendConnection>
  /** The connection the client holds now, if any (not opened for this). */
  current(): Promise<BackendConnection | undefined>
  /**
   * The connection `connection()` would return, when that needs no waiting: open, and of the
   * backend's current generation. Optional: without it every call takes `connection()`.
   */
  open?(): BackendConnection | undefined
  /** Closes and forgets a connection whose backend session is gone. */
  drop(conn: BackendConnection | undefined): void
  /** A list change or resource update the backend sent on a relayed call's stream. */
  catalogNotification(notification: RpcNotification): void
}

/** A Streamable HTTP backend as the relay sees it, for one client. */
export function relayBackendFor(runtime: BackendRuntime, link: RelayLink): RelayBackend {
  const config = runtime.config as HttpBackendConfig
  const fixed = revealAll(config.headers)
  const connection = async (lost: RelayBackendSession | undefined) => {
    if (lost) {
      const conn = await link.current()
      // Concurrent calls may all see the 404: only the first drops the connection.
      if (!conn || conn.httpSession?.sessionId === lost.sessionId) link.drop(conn)
    }
    return link.connection()
  }
  const sessionOf = (conn: BackendConnection): RelayBackendSession =>
    conn.httpSession ?? { sessionId: undefined, protocolVersion: undefined }
  const credentials = async (signal?: AbortSignal) => ({
    ...fixed,
    ...(await runtime.auth.headers(link.identity(), signal)),
  })
  // The last call's target, reused while its connection and credentials are the same objects:
  // a call then starts without waiting and without building headers.
  let last: { conn: BackendConnection; auth: Readonly<Record<string, string>>; target: RelayTarget } | undefined
  const slowTarget = async (lost: RelayBackendSession | undefined): Promise<RelayTarget> => {
    const conn = await connection(lost)
    const session = sessionOf(conn)
    const known = runtime.auth.headersNow?.(link.identity())
    const auth = known ?? (await runtime.auth.headers(link.identity()))
    const target = { session, headers: buildPostHeaders({ ...fixed, ...auth }, session) }
    if (known && link.open?.() === conn) last = { conn, auth: known, target }
    return target
  }
  return {
    name: runtime.name,
    url: new URL(config.url),
    session: async (lost) => sessionOf(await connection(lost)),
    headers: credentials,
    target: (lost) => {
      if (!lost && last && link.open?.() === last.conn) {
        if (runtime.auth.headersNow?.(link.identity()) === last.auth) return last.target
      }
      return slowTarget(lost)
    },
    // A per-user backend's failed call also replaces the connection it used (backend-runtime.ts).
    reportFailure: (err) => {
      if (runtime.reportFailure(err)) void link.current().then((conn) => link.drop(conn))
    },
    catalogNotification: (n) => link.catalogNotification(n),
  }
}

/** The list a backend's list_changed (or resources/updated) notification is about. */
export function notifiedList(method: string): ListKind | 'resources-all' {
  if (method === 'notifications/tools/list_changed') return 'tools'
  if (method === 'notifications/prompts/list_changed') return 'prompts'
  return 'resources-all'
}
