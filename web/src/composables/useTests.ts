// The discovered test paths (`GET /api/tests`), shared by the form and the filters.
import { ref } from 'vue'
import { api } from '../lib/api/client'

const tests = ref<string[]>([])
let inflight: Promise<void> | null = null

/** Refetches the list (the tree may have changed); concurrent calls share one request. */
function refresh(): Promise<void> {
  inflight ??= api
    .tests()
    .then((list) => {
      tests.value = list
    })
    .catch(() => {
      // Suggestions are a help, not a must: typing a whole path still works.
    })
    .finally(() => {
      inflight = null
    })
  return inflight
}

export function useTests() {
  return { tests, refresh }
}
