// Per-test results of runs, tests' histories and the verdicts, fetched on demand.
import { defineStore } from 'pinia'
import { markRaw, ref, shallowRef } from 'vue'
import {
  resultsApi,
  type HistoryEntry,
  type RerunBody,
  type RunResults,
  type Verdicts,
} from '../lib/api/results'
import type { Run } from '../lib/api/types'
import { useRunsStore } from './runs'

/** How many past results a test's history strip shows. */
export const HISTORY_LIMIT = 30
/** How many runs' results are kept (a run may have 20,000 tests): the rest are refetched. */
const RUNS_KEPT = 5

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

export const useResultsStore = defineStore('results', () => {
  /** By run id; raw, as a run may have 20,000 tests and nothing edits them. */
  const byRun = ref<Record<number, RunResults>>({})
  const errors = ref<Record<number, string>>({})
  const history = shallowRef<Record<string, HistoryEntry[]>>({})
  const historyErrors = ref<Record<string, string>>({})
  const verdicts = shallowRef<Verdicts | null>(null)
  const verdictsError = ref<string | null>(null)
  const verdictsLoading = ref(false)
  const loads = new Map<number, number>()
  /** Run ids in `byRun`, least recently loaded first. */
  let kept: number[] = []

  /** Fetches (again) the results of run `id`; a slower older answer never wins. */
  async function load(id: number): Promise<void> {
    const seq = (loads.get(id) ?? 0) + 1
    loads.set(id, seq)
    try {
      const res = await resultsApi.results(id)
      if (loads.get(id) !== seq) return
      byRun.value[id] = markRaw(res)
      delete errors.value[id]
      kept = [...kept.filter((other) => other !== id), id]
      for (const old of kept.splice(0, Math.max(0, kept.length - RUNS_KEPT)))
        delete byRun.value[old]
    } catch (e) {
      if (loads.get(id) === seq) errors.value[id] = message(e)
    }
  }

  async function loadHistory(nodeid: string): Promise<void> {
    try {
      const list = await resultsApi.history(nodeid, HISTORY_LIMIT)
      history.value = { ...history.value, [nodeid]: list }
      delete historyErrors.value[nodeid]
    } catch (e) {
      historyErrors.value[nodeid] = message(e)
    }
  }

  async function loadVerdicts(window?: number): Promise<void> {
    verdictsLoading.value = true
    try {
      verdicts.value = await resultsApi.verdicts(window)
      verdictsError.value = null
    } catch (e) {
      verdictsError.value = message(e)
    } finally {
      verdictsLoading.value = false
    }
  }

  /** Queues a re-run of run `id`; the new run joins the runs store. */
  async function rerun(id: number, body: RerunBody): Promise<Run> {
    const run = await resultsApi.rerun(id, body)
    useRunsStore().upsert(run)
    return run
  }

  return {
    byRun,
    errors,
    history,
    historyErrors,
    verdicts,
    verdictsError,
    verdictsLoading,
    load,
    loadHistory,
    loadVerdicts,
    rerun,
  }
})
