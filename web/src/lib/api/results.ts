// Per-test results, re-runs, a test's history and the verdicts: types and calls
// (PRODUCT.md, "Results and verdicts").
//
// History and verdicts come from `schema.ts` (generated from the server's
// types); the rest is hand-written until the server's types for it land
// there, PRODUCT.md's shapes field for field.
import { request } from './client'
import type { components } from './schema'
import type { Run } from './types'

type Schemas = components['schemas']

/** A test's result word. */
export const TEST_OUTCOMES = ['failed', 'error', 'passed', 'skipped', 'xfailed', 'xpassed'] as const
export type TestOutcome = (typeof TEST_OUTCOMES)[number]

/** pytest's exit code in words, once the run has ended. */
export type RunOutcome =
  | 'passed'
  | 'tests_failed'
  | 'interrupted'
  | 'internal_error'
  | 'usage_error'
  | 'no_tests'
  | 'crashed'

/** Counts of a run: live from `-vv` while it goes (`final: false`), JUnit's at the end. */
export interface Summary {
  passed: number
  failed: number
  error: number
  skipped: number
  xfailed: number
  xpassed: number
  total: number
  final: boolean
}

/** The project's git state when a run started. */
export type Revision = Schemas['GitRevision']

/** The fields a run carries about its results and what it asked pytest for. */
export interface RunResultFields {
  summary: Summary | null
  outcome: RunOutcome | null
  revision: Revision | null
  rerun_of: number | null
  select: string[] | null
  keyword: string | null
  markers: string | null
  /** Why a finished run has only its live counts (no usable JUnit file), or null. */
  results_note: string | null
}

/** One test of a run, as `GET /api/testruns/{id}/results` lists it. */
export interface TestResult {
  nodeid: string
  outcome: TestOutcome
  duration_s: number | null
  message: string | null
  /** 0-based line of the run's output that reports it. */
  line: number | null
}

export interface RunResults {
  id: number
  summary: Summary | null
  tests: TestResult[]
}

/** One past result of a test, newest first (`outcome` one of the TestOutcome words). */
export type HistoryEntry = Schemas['HistoryEntry']

export type VerdictWord = Schemas['Verdict']
export type TestVerdict = Schemas['TestVerdict']
export type SuspectEnv = Schemas['SuspectEnv']
export type Verdicts = Schemas['Verdicts']

export interface RerunBody {
  username: string
  only_failed?: boolean
  env_id?: number
  labels?: string[]
  wait?: boolean
}

/** A run's result fields; null for each one an older server (or run) leaves out. */
export function resultFields(run: Run): RunResultFields {
  const r = run as Run & Partial<RunResultFields>
  return {
    summary: r.summary ?? null,
    outcome: r.outcome ?? null,
    revision: r.revision ?? null,
    rerun_of: r.rerun_of ?? null,
    select: r.select ?? null,
    keyword: r.keyword ?? null,
    markers: r.markers ?? null,
    results_note: r.results_note ?? null,
  }
}

export const resultsApi = {
  results(id: number): Promise<RunResults> {
    return request('GET', `/api/testruns/${id}/results`)
  },
  rerun(id: number, body: RerunBody): Promise<Run> {
    return request('POST', `/api/testruns/${id}/rerun`, body)
  },
  history(nodeid: string, limit: number): Promise<HistoryEntry[]> {
    const q = new URLSearchParams({ nodeid, limit: String(limit) })
    return request('GET', `/api/results/history?${q.toString()}`)
  },
  verdicts(window?: number): Promise<Verdicts> {
    return request('GET', `/api/verdicts${window ? `?window=${window}` : ''}`)
  },
}
