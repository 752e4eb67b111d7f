// The one app-wide `/ws` connection, routing its events to the other stores.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { defaultWsUrl, LiveSocket, type ConnectionState } from '../lib/ws'
import { useEnvsStore } from './envs'
import { useLogsStore } from './logs'
import { useRunsStore } from './runs'
import { useWorkersStore } from './workers'

export const useLiveStore = defineStore('live', () => {
  const state = ref<ConnectionState>('closed')
  /** Counts reconnects: views refetch what they show when it moves. */
  const reconnects = ref(0)
  const socket = new LiveSocket({ url: defaultWsUrl() })
  let started = false

  function start(): void {
    if (started) return
    started = true
    const runs = useRunsStore()
    const logs = useLogsStore()
    const workers = useWorkersStore()
    socket.onState((next, reconnect) => {
      state.value = next
      if (next === 'open' && reconnect) {
        reconnects.value++
        // Events were missed while away: refetch what the live stream would have told.
        void runs.refresh()
        void workers.load()
      }
    })
    socket.onEvent((event) => {
      switch (event.event) {
        case 'taskAdded':
        case 'taskChanged':
          runs.upsert(event.run)
          break
        case 'logLines':
        case 'logEnd':
        case 'logPartial':
        case 'lagged':
          logs.receive(event)
          break
        case 'envChanged':
          useEnvsStore().apply(event.env)
          break
        case 'workersChanged':
          workers.set(event.workers)
          break
        case 'error':
          console.warn('ws:', event.message)
          break
      }
    })
    window.addEventListener('online', () => socket.reconnectNow())
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) socket.reconnectNow()
    })
    socket.start()
  }

  return { state, reconnects, socket, start }
})
