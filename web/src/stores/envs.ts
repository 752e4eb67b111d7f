// Environments and which run holds each (`GET /api/envs`).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../lib/api/client'
import type { Env } from '../lib/api/types'

export const useEnvsStore = defineStore('envs', () => {
  const envs = ref<Env[]>([])
  const loaded = ref(false)
  /** The list could not be had (first load failed): the form takes a number instead. */
  const failed = ref(false)
  let timer: ReturnType<typeof setTimeout> | null = null
  let wanted = false

  async function load(): Promise<void> {
    wanted = true
    try {
      envs.value = await api.envs()
      loaded.value = true
      failed.value = false
    } catch {
      if (!loaded.value) failed.value = true
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

  return { envs, loaded, failed, load, changed }
})
