// The one app-wide `/ws` connection and a small event bus over it.
//
// This store imports no other store: the stores that want `/ws` events
// register for them (`on`, `onReconnect`) when they are created, so every
// dependency points at this module and none comes back (runs, workers and
// logs → live). A store that does not exist yet has nothing to update: it
// loads over HTTP when first used.
import { defineStore } from 'pinia'
import { markRaw, ref } from 'vue'
import type { ServerEvent } from '../lib/api/types'
import { defaultWsUrl, LiveSocket, type ConnectionState } from '../lib/ws'

/** The `event` names the server sends. */
export type EventName = ServerEvent['event']
/** The frame of one event name. */
export type EventOf<K extends EventName> = Extract<ServerEvent, { event: K }>

export const useLiveStore = defineStore('live', () => {
  const state = ref<ConnectionState>('closed')
  /** Counts reconnects: views refetch what they show when it moves. */
  const reconnects = ref(0)
  // Raw: the socket compares its own fields by identity, which a reactive proxy would break.
  const socket = markRaw(new LiveSocket({ url: defaultWsUrl() }))
  const handlers = new Map<EventName, Set<(event: ServerEvent) => void>>()
  const reconnectHandlers = new Set<() => void>()
  let started = false

  /** Calls `handler` with every frame of the given event names; returns an unsubscribe. */
  function on<K extends EventName>(names: readonly K[], handler: (event: EventOf<K>) => void) {
    const h = handler as (event: ServerEvent) => void
    for (const name of names) {
      let set = handlers.get(name)
      if (!set) handlers.set(name, (set = new Set()))
      set.add(h)
    }
    return () => names.forEach((name) => handlers.get(name)?.delete(h))
  }

  /** Calls `fn` after every reconnect: events were missed while away, refetch. */
  function onReconnect(fn: () => void) {
    reconnectHandlers.add(fn)
    return () => reconnectHandlers.delete(fn)
  }

  socket.onState((next, reconnect) => {
    state.value = next
    if (next === 'open' && reconnect) {
      reconnects.value++
      reconnectHandlers.forEach((fn) => fn())
    }
  })
  socket.onEvent((event) => {
    if (event.event === 'error') console.warn('ws:', event.message)
    handlers.get(event.event)?.forEach((h) => h(event))
  })

  function start(): void {
    if (started) return
    started = true
    window.addEventListener('online', () => socket.reconnectNow())
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) socket.reconnectNow()
    })
    socket.start()
  }

  return { state, reconnects, socket, start, on, onReconnect }
})
