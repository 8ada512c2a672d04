import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from '@modelcontextprotocol/server'
import type { Logger } from '../../log/index.js'
import type { ListKind } from '../catalog.js'
import type { RpcRequest } from '../routing/json-rpc.js'
import type { Caller } from './caller-pool.js'

/** MCP 2026-07-28 `SubscriptionFilter`: each notification type is opt-in. */
export interface ListenFilter {
  toolsListChanged?: true
  promptsListChanged?: true
  resourcesListChanged?: true
  resourceSubscriptions?: string[]
}

export interface ListenHubOptions {
  logger: Logger
  serverInfo: { name: string; version: string }
  /** Open streams at once, in this process. */
  maxListeners: number
  /** Open streams at once per caller, so one identity cannot take every slot. */
  maxListenersPerCaller: number
  /** Interval of SSE comment frames that keep idle proxies from closing the stream. */
  keepAliveMs: number
  /**
   * Watches the resources a listener asked for; resolves with the URIs now watched (a URI no
   * backend serves is left out) and the function that ends the watch.
   */
  watch(caller: Caller, uris: string[]): Promise<{ uris: string[]; stop: () => void }>
}

interface Listener {
  callerKey: string
  filter: ListenFilter
  notify(method: string, params: Record<string, unknown>): void
  end(graceful: boolean): void
}

const LIST_METHOD: Record<ListKind | 'resources-all', string> = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
  resourceTemplates: 'notifications/resources/list_changed',
  'resources-all': 'notifications/resources/list_changed',
}
const LIST_FILTER: Record<ListKind | 'resources-all', keyof ListenFilter> = {
  tools: 'toolsListChanged',
  prompts: 'promptsListChanged',
  resources: 'resourcesListChanged',
  resourceTemplates: 'resourcesListChanged',
  'resources-all': 'resourcesListChanged',
}

const MAX_WATCHED_URIS = 256

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
}

/**
 * `subscriptions/listen` for 2026-07-28 callers (MCP 2026-07-28 §Subscriptions), served by vmcp
 * rather than the SDK's router so that events can be per caller: a shared backend's list change
 * goes to every listener, a per-user (Mode B) backend's only to its user's, and
 * `resources/updated` only to listeners that named the URI, which vmcp watches at the owning
 * backend for as long as one of them listens. Only what the filter asked for is sent: the
 * filter has no logging, so backend log messages never go to a listen stream.
 */
export class ListenHub {
  readonly #listeners = new Set<Listener>()
  readonly #options: ListenHubOptions

  constructor(options: ListenHubOptions) {
    this.#options = options
  }

  get size(): number {
    return this.#listeners.size
  }

  /** Serves one `subscriptions/listen` request: an SSE stream until the client closes it. */
  async serve(caller: Caller, message: RpcRequest, signal: AbortSignal): Promise<Response> {
    const id = message.id
    const { maxListeners, maxListenersPerCaller, logger } = this.#options
    if (this.#listeners.size >= maxListeners || caller.listeners >= maxListenersPerCaller) {
      logger.warn(
        { open: this.#listeners.size, mine: caller.listeners },
        'listen stream refused: limit',
      )
      return rpcError(id, -32603, 'Subscription limit reached')
    }
    const asked = parseFilter(message.params?.notifications)
    if (!asked)
      return rpcError(
        id,
        -32602,
        "Invalid params: 'notifications' is required and must be a valid SubscriptionFilter",
      )
    // Each URI is a subscription at a backend: a stream may watch a bounded number of them.
    if ((asked.resourceSubscriptions?.length ?? 0) > MAX_WATCHED_URIS)
      return rpcError(
        id,
        -32602,
        `Invalid params: at most ${MAX_WATCHED_URIS} resourceSubscriptions`,
      )
    const filter: ListenFilter = { ...asked }
    delete filter.resourceSubscriptions
    let stopWatching = () => {}
    if (asked.resourceSubscriptions?.length) {
      const watched = await this.#options.watch(caller, asked.resourceSubscriptions)
      stopWatching = watched.stop
      if (watched.uris.length > 0) filter.resourceSubscriptions = watched.uris
    }
    caller.listeners++
    const encoder = new TextEncoder()
    let controller!: ReadableStreamDefaultController<Uint8Array>
    let closed = false
    let keepAlive: NodeJS.Timeout | undefined
    const write = (frame: string) => {
      if (!closed) controller.enqueue(encoder.encode(frame))
    }
    const stamped = (params: Record<string, unknown>) => ({
      ...params,
      _meta: { ...(params._meta as object | undefined), [SUBSCRIPTION_ID_META_KEY]: id },
    })
    const onAbort = () => listener.end(false)
    const listener: Listener = {
      callerKey: caller.key,
      filter,
      notify: (method, params) =>
        write(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method, params: stamped(params) })}\n\n`,
        ),
      end: (graceful) => {
        if (closed) return
        // A stream the server ends gets the listen request's result (MCP 2026-07-28 §Subscriptions).
        if (graceful) {
          const result = {
            resultType: 'complete',
            _meta: {
              [SUBSCRIPTION_ID_META_KEY]: id,
              [SERVER_INFO_META_KEY]: this.#options.serverInfo,
            },
          }
          write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result })}\n\n`)
        }
        closed = true
        clearInterval(keepAlive)
        signal.removeEventListener('abort', onAbort)
        this.#listeners.delete(listener)
        caller.listeners--
        stopWatching()
        try {
          controller.close()
        } catch {
          // already closed by the client
        }
      },
    }
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c
        listener.notify('notifications/subscriptions/acknowledged', { notifications: filter })
        if (Object.keys(filter).length === 0) return listener.end(true)
        this.#listeners.add(listener)
        keepAlive = setInterval(() => write(': keepalive\n\n'), this.#options.keepAliveMs)
        keepAlive.unref()
      },
      cancel: () => listener.end(false),
    })
    if (signal.aborted) listener.end(false)
    else signal.addEventListener('abort', onAbort, { once: true })
    return new Response(body, { status: 200, headers: SSE_HEADERS })
  }

  /** A list changed: for everyone, or (a per-user catalog) for one caller's listeners only. */
  listChanged(kind: ListKind | 'resources-all', callerKey?: string): void {
    for (const l of this.#listeners) {
      if (callerKey !== undefined && l.callerKey !== callerKey) continue
      if (l.filter[LIST_FILTER[kind]]) l.notify(LIST_METHOD[kind], {})
    }
  }

  /** A resource changed at a backend: the caller's listeners that named it hear about it. */
  resourceUpdated(callerKey: string, uri: string): void {
    for (const l of this.#listeners) {
      if (l.callerKey === callerKey && l.filter.resourceSubscriptions?.includes(uri))
        l.notify('notifications/resources/updated', { uri })
    }
  }

  /** Ends every stream with its result (vmcp is shutting down). */
  closeAll(): void {
    for (const l of [...this.#listeners]) l.end(true)
  }
}

/** The filter as asked, or `undefined` when it is not a valid `SubscriptionFilter`. */
function parseFilter(value: unknown): ListenFilter | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, unknown>
  const out: ListenFilter = {}
  for (const key of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    if (v[key] === undefined) continue
    if (typeof v[key] !== 'boolean') return undefined
    if (v[key]) out[key] = true
  }
  const uris = v.resourceSubscriptions
  if (uris !== undefined) {
    if (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string')) return undefined
    if (uris.length > 0) out.resourceSubscriptions = [...new Set(uris as string[])]
  }
  return out
}

function rpcError(id: RpcRequest['id'], code: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', id, error: { code, message } }, { status: 200 })
}
