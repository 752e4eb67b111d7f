// Environments and which run holds each (`GET /api/envs`).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../lib/api/client'
import type { Env } from '../lib/api/types'

export const useEnvsStore = defineStore('envs', () => {
  const envs = ref<Env[]>([])
  const loaded = ref(false)
  let timer: ReturnType<typeof setTimeout> | null = null
  let wanted = false

  async function load(): Promise<void> {
    wanted = true
    try {
      envs.value = await api.envs()
      loaded.value = true
    } catch {
      // Without the list the form falls back to a number field.
    }
  }

  /** A run changed: who holds which environment may have changed too. */
  function changed(): void {
    if (!wanted || timer !== null) return
    timer = setTimeout(() => {
      timer = null
      void load()
    }, 300)
  }

  return { envs, loaded, load, changed }
})
