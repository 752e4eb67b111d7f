// Runs keyed by id, the filtered list on `/` (paged), and live updates to both.
import { defineStore } from 'pinia'
import { ref, shallowRef } from 'vue'
import { api, ApiError } from '../lib/api/client'
import type { NewRun, Run, RunFilters } from '../lib/api/types'
import { matchesFilters, sameFilters } from '../lib/filters'
import { useEnvsStore } from './envs'
import { useLiveStore } from './live'

export const PAGE_SIZE = 50

export const useRunsStore = defineStore('runs', () => {
  const byId = ref<Record<number, Run>>({})
  /** Ids in the list on `/`, newest first. */
  const listIds = shallowRef<number[]>([])
  const filters = shallowRef<RunFilters>({})
  const loading = ref(false)
  const hasMore = ref(true)
  const listError = ref<string | null>(null)
  const listLoaded = ref(false)
  let generation = 0

  function put(run: Run): void {
    byId.value[run.id] = run
  }

  function insertId(id: number): void {
    const ids = listIds.value
    if (ids.includes(id)) return
    const at = ids.findIndex((other) => other < id)
    listIds.value = at === -1 ? [...ids, id] : [...ids.slice(0, at), id, ...ids.slice(at)]
  }

  /** A run from `taskAdded`/`taskChanged` or any response. */
  function upsert(run: Run): void {
    const known = run.id in byId.value
    put(run)
    useEnvsStore().changed()
    if (!listLoaded.value) return
    const matches = matchesFilters(run, filters.value)
    if (listIds.value.includes(run.id)) {
      // e.g. a view of `running` runs drops the one that just finished.
      if (!matches) listIds.value = listIds.value.filter((id) => id !== run.id)
      return
    }
    if (!matches) return
    const ids = listIds.value
    const oldest = ids[ids.length - 1]
    // New runs go on top; an older run only if it falls inside the loaded range.
    if (!known || !hasMore.value || oldest === undefined || run.id > oldest) insertId(run.id)
  }

  async function loadPage(reset: boolean): Promise<void> {
    const gen = reset ? ++generation : generation
    const before = reset ? undefined : listIds.value[listIds.value.length - 1]
    loading.value = true
    listError.value = null
    try {
      const page = await api.listRuns(filters.value, PAGE_SIZE, before)
      if (gen !== generation) return
      for (const run of page) put(run)
      const ids = page.map((r) => r.id)
      listIds.value = reset
        ? ids
        : [...listIds.value, ...ids.filter((id) => !listIds.value.includes(id))]
      hasMore.value = page.length >= PAGE_SIZE
      listLoaded.value = true
    } catch (e) {
      if (gen === generation) listError.value = e instanceof Error ? e.message : String(e)
    } finally {
      if (gen === generation) loading.value = false
    }
  }

  /** Shows the list for these filters (first page); no-op if already shown. */
  async function show(next: RunFilters): Promise<void> {
    if (listLoaded.value && sameFilters(next, filters.value)) return
    filters.value = next
    listIds.value = []
    hasMore.value = true
    listLoaded.value = false
    await loadPage(true)
  }

  async function loadMore(): Promise<void> {
    if (loading.value || !hasMore.value) return
    await loadPage(false)
  }

  /** After a reconnect: refetch the first page and merge it into the list. */
  async function refresh(): Promise<void> {
    if (!listLoaded.value) return
    try {
      const page = await api.listRuns(filters.value, PAGE_SIZE)
      for (const run of page) {
        put(run)
        insertId(run.id)
      }
    } catch {
      // The next reconnect tries again.
    }
  }

  async function fetchRun(id: number): Promise<Run> {
    const run = await api.getRun(id)
    put(run)
    return run
  }

  async function create(body: NewRun): Promise<Run> {
    const run = await api.createRun(body)
    upsert(run)
    return run
  }

  async function cancel(id: number): Promise<Run | null> {
    try {
      const run = await api.cancelRun(id)
      put(run)
      return run
    } catch (e) {
      // 409: it finished meanwhile; show what it is now.
      if (e instanceof ApiError && e.status === 409) return fetchRun(id)
      throw e
    }
  }

  const live = useLiveStore()
  live.on(['taskAdded', 'taskChanged'], (event) => upsert(event.run))
  live.onReconnect(() => void refresh())

  return {
    byId,
    listIds,
    filters,
    loading,
    hasMore,
    listError,
    listLoaded,
    upsert,
    show,
    loadMore,
    refresh,
    fetchRun,
    create,
    cancel,
  }
})
