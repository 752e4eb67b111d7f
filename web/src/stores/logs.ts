// Live logs keyed by run id: HTTP windows plus the `/ws` stream, batched per frame.
import { defineStore } from 'pinia'
import { markRaw, shallowRef, type ShallowRef } from 'vue'
import { api } from '../lib/api/client'
import type { ServerEvent } from '../lib/api/types'
import { CHUNK, LogBuffer } from '../lib/logBuffer'
import { useLiveStore } from './live'

type LogEvent = Extract<ServerEvent, { event: 'logLines' | 'logEnd' | 'logPartial' | 'lagged' }>

/** Parallel HTTP window fetches per log. */
const MAX_INFLIGHT = 3

export interface LogSession {
  id: number
  buffer: LogBuffer
  /** Bumped after every change to `buffer` (the buffer itself is not reactive). */
  version: ShallowRef<number>
  ready: ShallowRef<boolean>
  error: ShallowRef<string | null>
  /** The line the view looks at: eviction keeps what is near it. */
  focus: number
  refs: number
  inflight: Set<number>
}

/**
 * Runs `fn` once, on the next animation frame; a hidden tab gets no frames, so
 * a timer stands in for one and events never pile up unapplied.
 */
export function nextFrame(fn: () => void): void {
  let done = false
  const once = () => {
    if (done) return
    done = true
    fn()
  }
  if (typeof requestAnimationFrame === 'function' && !document.hidden) requestAnimationFrame(once)
  setTimeout(once, document.hidden ? 100 : 250)
}

export const useLogsStore = defineStore('logs', () => {
  const live = useLiveStore()
  const sessions = new Map<number, LogSession>()
  let pending: LogEvent[] = []
  let scheduled = false

  function bump(session: LogSession): void {
    session.version.value++
  }

  /** The follow cursor of a session: from the next line it lacks, or nothing once ended. */
  function cursor(session: LogSession) {
    return () =>
      session.ready.value && !session.buffer.ended ? { from: session.buffer.next } : null
  }

  /** Opens run `id`'s log (or shares the open one); `active`: the run may still print. */
  function open(id: number, active: boolean): LogSession {
    let session = sessions.get(id)
    if (session) {
      session.refs++
      return session
    }
    session = markRaw({
      id,
      buffer: new LogBuffer(),
      version: shallowRef(0),
      ready: shallowRef(false),
      error: shallowRef<string | null>(null),
      focus: 0,
      refs: 1,
      inflight: new Set<number>(),
    })
    sessions.set(id, session)
    void start(session, active)
    return session
  }

  async function start(session: LogSession, active: boolean): Promise<void> {
    try {
      const page = await api.lines(session.id, 0, CHUNK)
      if (sessions.get(session.id) !== session) return
      const buf = session.buffer
      buf.applyPage(page.from, page.lines, page.total)
      buf.next = Math.max(buf.next, page.total)
      if (!active) buf.ended = true
      session.ready.value = true
      bump(session)
      if (active) live.socket.follow(session.id, cursor(session))
    } catch (e) {
      session.error.value = e instanceof Error ? e.message : String(e)
    }
  }

  function close(id: number): void {
    const session = sessions.get(id)
    if (!session || --session.refs > 0) return
    sessions.delete(id)
    live.socket.unfollow(id)
  }

  /** Fetches the windows of rows [start, end) that are not stored yet. */
  function ensureRange(id: number, start: number, end: number): void {
    const session = sessions.get(id)
    if (!session || !session.ready.value) return
    session.focus = Math.floor((start + end) / 2)
    for (const c of session.buffer.missingChunks(start, end)) {
      if (session.inflight.size >= MAX_INFLIGHT) break
      if (session.inflight.has(c)) continue
      session.inflight.add(c)
      api
        .lines(id, c * CHUNK, CHUNK)
        .then((page) => {
          session.buffer.applyPage(page.from, page.lines, page.total)
          bump(session)
        })
        .catch(() => {
          // Left as a hole: the next scroll asks again.
        })
        .finally(() => session.inflight.delete(c))
    }
  }

  /** A log event from `/ws`: queued, applied with the others of this frame. */
  function receive(event: LogEvent): void {
    if (!sessions.has(event.id)) return
    pending.push(event)
    if (scheduled) return
    scheduled = true
    nextFrame(flush)
  }

  function flush(): void {
    scheduled = false
    const events = pending
    pending = []
    const touched = new Set<LogSession>()
    for (const event of events) {
      const session = sessions.get(event.id)
      if (!session) continue
      const buf = session.buffer
      switch (event.event) {
        case 'logLines':
          buf.applyStream(event.from, event.lines)
          break
        case 'logPartial':
          buf.applyPartial(event.line, event.text)
          break
        case 'logEnd':
          buf.applyEnd(event.total)
          break
        case 'lagged':
          buf.applyLagged(event.next)
          live.socket.refollow(event.id)
          break
      }
      touched.add(session)
    }
    for (const session of touched) {
      session.buffer.trim(Math.min(session.focus, session.buffer.total))
      bump(session)
    }
  }

  live.on(['logLines', 'logEnd', 'logPartial', 'lagged'], receive)

  function get(id: number): LogSession | undefined {
    return sessions.get(id)
  }

  return { open, close, get, ensureRange, receive, flush }
})
