// Per-test results, re-runs, a test's history and the verdicts: types and calls
// (PRODUCT.md, "Results and verdicts"). The shapes come from `schema.ts`,
// generated from the server's own types (see types.ts).
import { request } from './client'
import type { components } from './schema'
import type { Run } from './types'

type Schemas = components['schemas']

/** A test's result word. */
export type TestOutcome = Schemas['TestOutcome']

// A Record over the union: a word the server gains or loses fails typecheck.
const OUTCOME_ORDER: Record<TestOutcome, true> = {
  failed: true,
  error: true,
  passed: true,
  skipped: true,
  xfailed: true,
  xpassed: true,
}

/** Every result word, failures first (the order of the outcome filter). */
export const TEST_OUTCOMES = Object.keys(OUTCOME_ORDER) as readonly TestOutcome[]

/** pytest's exit code in words, once the run has ended (the server sends a string). */
export type RunOutcome =
  | 'passed'
  | 'tests_failed'
  | 'interrupted'
  | 'internal_error'
  | 'usage_error'
  | 'no_tests'
  | 'crashed'

/** Counts of a run: live from `-vv` while it goes (`final: false`), JUnit's at the end. */
export type Summary = Schemas['Summary']

/** The project's git state when a run started. */
export type Revision = Schemas['Revision']

/** The fields a run carries about its results and what it asked pytest for, null when absent. */
export interface RunResultFields {
  summary: Summary | null
  outcome: string | null
  revision: Revision | null
  rerun_of: number | null
  select: string[] | null
  keyword: string | null
  markers: string | null
  /** Why a finished run has only its live counts (no usable JUnit file), or null. */
  results_note: string | null
}

/** One test of a run, as `GET /api/testruns/{id}/results` lists it (`line` 0-based). */
export type TestResult = Schemas['TestResult']
export type RunResults = Schemas['RunResults']

/** One past result of a test, newest first (`outcome` one of the TestOutcome words). */
export type HistoryEntry = Schemas['HistoryEntry']

export type VerdictWord = Schemas['Verdict']
export type TestVerdict = Schemas['TestVerdict']
export type SuspectEnv = Schemas['SuspectEnv']
export type Verdicts = Schemas['Verdicts']

export type RerunBody = Schemas['RerunBody']

/** A run's result fields; null for each one the server leaves out. */
export function resultFields(r: Run): RunResultFields {
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
