import { describe, expect, it } from 'vitest'
import type { Summary, TestResult } from '../../lib/api/results'
import {
  failuresFirst,
  filterTests,
  lineHash,
  outcomeWords,
  revisionText,
  runSummaryText,
  summaryText,
  testDuration,
  verdictWord,
} from './format'

function summary(over: Partial<Summary>): Summary {
  return {
    passed: 0,
    failed: 0,
    error: 0,
    skipped: 0,
    xfailed: 0,
    xpassed: 0,
    total: 0,
    final: true,
    ...over,
  }
}

function test(nodeid: string, outcome: TestResult['outcome']): TestResult {
  return { nodeid, outcome, duration_s: 0.1, message: null, line: 3 }
}

describe('results formatting', () => {
  it('says failures first and leaves zero counts out', () => {
    expect(summaryText(summary({ passed: 4, failed: 2, total: 6 }))).toBe('2 failed, 4 passed')
    expect(summaryText(summary({ passed: 1, error: 2, skipped: 1, xfailed: 1, total: 5 }))).toBe(
      '2 errors, 1 passed, 1 skipped, 1 xfailed',
    )
    expect(summaryText(summary({ error: 1, xpassed: 3, total: 4 }))).toBe('1 error, 3 xpassed')
    expect(summaryText(summary({}))).toBe('no tests')
    expect(summaryText(null)).toBe('')
  })

  it('marks a live summary as in progress', () => {
    expect(summaryText(summary({ passed: 3, total: 3, final: false }))).toBe('3 passed so far')
    expect(summaryText(summary({ final: false }))).toBe('no results yet')
  })

  it('words the outcome of a suite that could not run, instead of its counts', () => {
    expect(outcomeWords('no_tests')).toBe('no tests collected')
    expect(outcomeWords('usage_error')).toBe('usage error')
    expect(outcomeWords('internal_error')).toBe('internal error')
    expect(outcomeWords('interrupted')).toBe('interrupted')
    expect(outcomeWords('crashed')).toBe('crashed')
    expect(outcomeWords('passed')).toBeNull()
    expect(outcomeWords('tests_failed')).toBeNull()
    expect(runSummaryText(summary({}), 'no_tests')).toBe('no tests collected')
    expect(runSummaryText(summary({ passed: 2, total: 2 }), 'interrupted')).toBe(
      'interrupted; 2 passed',
    )
    expect(runSummaryText(summary({ failed: 1, total: 1 }), 'tests_failed')).toBe('1 failed')
    expect(runSummaryText(null, null)).toBe('')
  })

  it('puts failed and error first, each group in pytest order', () => {
    const tests = [
      test('a', 'passed'),
      test('b', 'failed'),
      test('c', 'skipped'),
      test('d', 'error'),
      test('e', 'failed'),
    ]
    expect(failuresFirst(tests).map((t) => t.nodeid)).toEqual(['b', 'd', 'e', 'a', 'c'])
  })

  it('filters by outcome and by name, any case', () => {
    const tests = [
      test('tests/test_a.py::test_one', 'passed'),
      test('tests/test_a.py::test_Two', 'failed'),
      test('tests/test_b.py::test_three', 'error'),
    ]
    expect(filterTests(tests, '', 'two').map((t) => t.nodeid)).toEqual([
      'tests/test_a.py::test_Two',
    ])
    expect(filterTests(tests, 'failures', '').length).toBe(2)
    expect(filterTests(tests, 'error', '').map((t) => t.outcome)).toEqual(['error'])
    expect(filterTests(tests, 'passed', 'test_b')).toEqual([])
  })

  it("links a 0-based output line to the log viewer's 1-based anchor", () => {
    expect(lineHash(0)).toBe('#L1')
    expect(lineHash(41)).toBe('#L42')
  })

  it('shows durations, revisions and verdict words', () => {
    expect(testDuration(0.0042)).toBe('4ms')
    expect(testDuration(1.5)).toBe('1.50s')
    expect(testDuration(125)).toBe('2m 05s')
    expect(testDuration(null)).toBe('—')
    expect(testDuration(0.0001)).toBe('<1ms')
    expect(revisionText({ commit: '0123456789abcdef', dirty: true })).toBe('0123456 dirty')
    expect(revisionText({ commit: '0123456789abcdef', dirty: false })).toBe('0123456')
    expect(revisionText(null)).toBe('—')
    expect(verdictWord('env_suspect')).toBe('environment suspect')
    expect(verdictWord('flaky')).toBe('flaky')
  })
})
