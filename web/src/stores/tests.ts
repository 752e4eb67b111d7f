// The discovered test paths (`GET /api/tests`): the queue form's suggestions.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../lib/api/client'

export const useTestsStore = defineStore('tests', () => {
  const paths = ref<string[]>([])
  let inflight: Promise<void> | null = null

  /** Refetches the list (the tree may have changed); concurrent calls share one request. */
  function refresh(): Promise<void> {
    inflight ??= api
      .tests()
      .then((list) => {
        paths.value = list
      })
      .catch(() => {
        // Suggestions are a help, not a must: typing a whole path still works.
      })
      .finally(() => {
        inflight = null
      })
    return inflight
  }

  return { paths, refresh }
})
