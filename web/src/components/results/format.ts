// Words and colours for results: run summaries, outcomes, verdicts, revisions.
import type {
  Revision,
  RunOutcome,
  Summary,
  TestOutcome,
  TestResult,
  VerdictWord,
} from '../../lib/api/results'

/** Failures first, then the rest in the order pytest reports them in its summary. */
const SUMMARY_ORDER: { key: TestOutcome; one: string; many: string }[] = [
  { key: 'failed', one: 'failed', many: 'failed' },
  { key: 'error', one: 'error', many: 'errors' },
  { key: 'passed', one: 'passed', many: 'passed' },
  { key: 'skipped', one: 'skipped', many: 'skipped' },
  { key: 'xfailed', one: 'xfailed', many: 'xfailed' },
  { key: 'xpassed', one: 'xpassed', many: 'xpassed' },
]

/** `2 failed, 4 passed`; zero counts left out; a live count says `so far`. */
export function summaryText(summary: Summary | null | undefined): string {
  if (!summary) return ''
  const parts = SUMMARY_ORDER.filter((o) => summary[o.key] > 0).map(
    (o) => `${summary[o.key]} ${summary[o.key] === 1 ? o.one : o.many}`,
  )
  if (!summary.final) return parts.length ? `${parts.join(', ')} so far` : 'no results yet'
  return parts.length ? parts.join(', ') : 'no tests'
}

/** Whether the summary counts any failed or errored test. */
export function hasFailures(summary: Summary | null | undefined): boolean {
  return !!summary && summary.failed + summary.error > 0
}

const OUTCOME_WORDS: Record<RunOutcome, string | null> = {
  passed: null,
  tests_failed: null,
  interrupted: 'interrupted',
  internal_error: 'internal error',
  usage_error: 'usage error',
  no_tests: 'no tests collected',
  crashed: 'crashed',
}

/** Why a suite could not run, in words; null when its counts say it all. */
export function outcomeWords(outcome: RunOutcome | string | null | undefined): string | null {
  if (!outcome) return null
  // An outcome this app does not know yet is shown as the server says it.
  return outcome in OUTCOME_WORDS ? OUTCOME_WORDS[outcome as RunOutcome] : outcome
}

const TEST_COLOURS: Record<TestOutcome, string> = {
  failed: '#dc2626',
  error: '#c2410c',
  passed: '#16a34a',
  skipped: '#6b7280',
  xfailed: '#7c3aed',
  xpassed: '#ca8a04',
}

/** A result word's colour; grey for a word this app does not know. */
export function testColour(outcome: TestOutcome | string): string {
  return TEST_COLOURS[outcome as TestOutcome] ?? '#6b7280'
}

export function isFailure(outcome: TestOutcome | string): boolean {
  return outcome === 'failed' || outcome === 'error'
}

/** Failed and errored tests first, each group in pytest's order. */
export function failuresFirst(tests: readonly TestResult[]): TestResult[] {
  const bad: TestResult[] = []
  const rest: TestResult[] = []
  for (const t of tests) (isFailure(t.outcome) ? bad : rest).push(t)
  return bad.concat(rest)
}

/** Tests with one of `outcomes` (all when empty) whose node id holds `search` (any case). */
export function filterTests(
  tests: readonly TestResult[],
  outcome: TestOutcome | '' | 'failures',
  search: string,
): TestResult[] {
  const needle = search.trim().toLowerCase()
  return tests.filter(
    (t) =>
      (outcome === '' ||
        t.outcome === outcome ||
        (outcome === 'failures' && isFailure(t.outcome))) &&
      (needle === '' || t.nodeid.toLowerCase().includes(needle)),
  )
}

/** `#L` of a 0-based output line (the log viewer numbers lines from 1). */
export function lineHash(line: number): string {
  return `#L${line + 1}`
}

/** `1.23s`, `250ms`, `—`. */
export function testDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—'
  if (seconds < 0.0005) return '<1ms'
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`
  if (seconds < 60) return `${seconds.toFixed(2)}s`
  const m = Math.floor(seconds / 60)
  return `${m}m ${String(Math.round(seconds % 60)).padStart(2, '0')}s`
}

/** `a1b2c3d`, `a1b2c3d dirty`, or `—` outside git. */
export function revisionText(revision: Revision | null | undefined): string {
  if (!revision) return '—'
  return `${revision.commit.slice(0, 7)}${revision.dirty ? ' dirty' : ''}`
}

const VERDICT_WORDS: Record<VerdictWord, string> = {
  flaky: 'flaky',
  env_suspect: 'environment suspect',
  broken: 'broken',
}

export function verdictWord(verdict: VerdictWord): string {
  return VERDICT_WORDS[verdict] ?? verdict
}

const VERDICT_COLOURS: Record<VerdictWord, string> = {
  flaky: '#ca8a04',
  env_suspect: '#7c3aed',
  broken: '#dc2626',
}

export function verdictColour(verdict: VerdictWord): string {
  return VERDICT_COLOURS[verdict] ?? '#6b7280'
}

/** A run's results in a few words: why its suite could not run, and its counts. */
export function runSummaryText(
  summary: Summary | null | undefined,
  outcome: RunOutcome | string | null | undefined,
): string {
  const words = outcomeWords(outcome)
  const counts = summaryText(summary)
  const hasCounts = !!summary && summary.total > 0
  if (words) return hasCounts ? `${words}; ${counts}` : words
  return counts
}
