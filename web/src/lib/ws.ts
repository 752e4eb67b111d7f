// The app's one `/ws` connection: reconnects with backoff and re-follows logs.
//
// Followers register a cursor function; after every (re)connect the socket
// sends `follow` from the line number the cursor returns, so a reconnect
// neither skips nor repeats lines. Framework-free so it can be unit-tested.
import type { ClientOp, ServerEvent } from './api/types'

export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: Event) => unknown) | null
  onmessage: ((ev: MessageEvent) => unknown) | null
  onclose: ((ev: CloseEvent) => unknown) | null
  onerror: ((ev: Event) => unknown) | null
}

export type ConnectionState = 'connecting' | 'open' | 'closed'

/** Where a follower wants its lines to start: `{from}` or `{tail}`; null: not any more. */
export type Cursor = { from: number } | { tail: number } | null

export interface LiveSocketOptions {
  url: string
  createSocket?: (url: string) => SocketLike
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
  random?: () => number
  /** First retry delay; doubles per failed attempt up to maxDelayMs. */
  baseDelayMs?: number
  maxDelayMs?: number
}

const OPEN = 1

/** `ws://host/ws` or `wss://host/ws` for the page's own origin. */
export function defaultWsUrl(loc: Location = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`
}

export class LiveSocket {
  private socket: SocketLike | null = null
  private readonly follows = new Map<number, () => Cursor>()
  private readonly listeners = new Set<(event: ServerEvent) => void>()
  private readonly stateListeners = new Set<(state: ConnectionState, reconnect: boolean) => void>()
  private timer: unknown = null
  private attempt = 0
  private everOpened = false
  private stopped = true
  private gate: (() => Promise<boolean>) | null = null
  state: ConnectionState = 'closed'

  private readonly createSocket: (url: string) => SocketLike
  private readonly setTimer: (fn: () => void, ms: number) => unknown
  private readonly clearTimer: (handle: unknown) => void
  private readonly random: () => number
  private readonly baseDelay: number
  private readonly maxDelay: number

  constructor(private readonly options: LiveSocketOptions) {
    this.createSocket = options.createSocket ?? ((url) => new WebSocket(url))
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms))
    this.clearTimer =
      options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>))
    this.random = options.random ?? Math.random
    this.baseDelay = options.baseDelayMs ?? 500
    this.maxDelay = options.maxDelayMs ?? 15_000
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) this.clearTimer(this.timer)
    this.timer = null
    const socket = this.socket
    this.socket = null
    if (socket) {
      socket.onclose = null
      socket.close()
    }
    this.setState('closed', false)
  }

  /** Try now instead of waiting out the backoff (the browser came back online). */
  reconnectNow(): void {
    if (this.stopped || this.state !== 'closed') return
    if (this.timer !== null) this.clearTimer(this.timer)
    this.timer = null
    this.connect()
  }

  /** Asked after every close before retrying (e.g. "is the session still there?");
   * false stops the socket until `start()`. */
  setReconnectGate(gate: (() => Promise<boolean>) | null): void {
    this.gate = gate
  }

  onEvent(listener: (event: ServerEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** `reconnect` is true for every open after the first: missed events must be refetched. */
  onState(listener: (state: ConnectionState, reconnect: boolean) => void): () => void {
    this.stateListeners.add(listener)
    return () => this.stateListeners.delete(listener)
  }

  /** Follows run `id` now (if connected) and again after every reconnect. */
  follow(id: number, cursor: () => Cursor): void {
    this.follows.set(id, cursor)
    this.sendFollow(id)
  }

  /** Follows again from the cursor's current position (after `lagged`). */
  refollow(id: number): void {
    this.sendFollow(id)
  }

  unfollow(id: number): void {
    if (!this.follows.delete(id)) return
    this.send({ op: 'unfollow', id })
  }

  isFollowing(id: number): boolean {
    return this.follows.has(id)
  }

  /** The delay before retry number `attempt` (0-based): exponential, capped, jittered. */
  backoff(attempt: number): number {
    const capped = Math.min(this.maxDelay, this.baseDelay * 2 ** attempt)
    return Math.round(capped * (0.5 + this.random() * 0.5))
  }

  private sendFollow(id: number): void {
    const cursor = this.follows.get(id)?.()
    if (!cursor) return
    this.send({ op: 'follow', id, ...cursor } as ClientOp)
  }

  private send(op: ClientOp): void {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(op))
  }

  private setState(state: ConnectionState, reconnect: boolean): void {
    this.state = state
    for (const listener of this.stateListeners) listener(state, reconnect)
  }

  private connect(): void {
    this.timer = null
    this.setState('connecting', false)
    let socket: SocketLike
    try {
      socket = this.createSocket(this.options.url)
    } catch {
      this.scheduleRetry()
      return
    }
    this.socket = socket
    socket.onopen = () => {
      if (this.socket !== socket) return
      const reconnect = this.everOpened
      this.everOpened = true
      this.attempt = 0
      this.setState('open', reconnect)
      for (const id of this.follows.keys()) this.sendFollow(id)
    }
    socket.onmessage = (ev: MessageEvent) => {
      if (this.socket !== socket || typeof ev.data !== 'string') return
      let event: ServerEvent
      try {
        event = JSON.parse(ev.data) as ServerEvent
      } catch {
        return
      }
      if (!event || typeof event !== 'object' || typeof event.event !== 'string') return
      for (const listener of this.listeners) listener(event)
    }
    socket.onerror = () => {
      // A close event always follows; retrying is decided there.
    }
    socket.onclose = () => {
      if (this.socket !== socket) return
      this.socket = null
      const gate = this.gate
      if (!gate) return this.scheduleRetry()
      this.setState('closed', false)
      void gate().then(
        (ok) => this.afterGate(ok),
        () => this.afterGate(true),
      )
    }
  }

  private afterGate(ok: boolean): void {
    // Stopped, or reconnected by `reconnectNow` meanwhile.
    if (this.stopped || this.socket !== null || this.timer !== null) return
    if (ok) this.scheduleRetry()
    else this.stop()
  }

  private scheduleRetry(): void {
    this.setState('closed', false)
    if (this.stopped) return
    const delay = this.backoff(this.attempt)
    this.attempt += 1
    this.timer = this.setTimer(() => this.connect(), delay)
  }
}
