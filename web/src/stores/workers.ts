// Remote workers connected to the server (`GET /api/workers`, `workersChanged`).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../lib/api/client'
import type { Worker } from '../lib/api/types'
import { useLiveStore } from './live'

export const useWorkersStore = defineStore('workers', () => {
  const workers = ref<Worker[]>([])
  const loaded = ref(false)

  async function load(): Promise<void> {
    try {
      set(await api.workers())
    } catch {
      // The panel stays empty; the live stream fills it when workers change.
    }
  }

  function set(list: Worker[]): void {
    workers.value = [...list].sort((a, b) => a.id.localeCompare(b.id))
    loaded.value = true
  }

  const live = useLiveStore()
  live.on(['workersChanged'], (event) => set(event.workers))
  live.onReconnect(() => void load())

  return { workers, loaded, load, set }
})
