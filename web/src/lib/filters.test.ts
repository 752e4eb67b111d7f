import { describe, expect, it } from 'vitest'
import type { Run } from './api/types'
import { compareRuns, filtersFromQuery, matchesFilters, sortFromQuery, toQuery } from './filters'

const run = (id: number, extra: Partial<Run> = {}): Run => ({
  id,
  username: 'alice',
  priority: 0,
  created_at: '2026-11-25T07:00:00+00:00',
  env_id: 1,
  path: './tests/a/test_x.py',
  status: 'succeeded',
  logs: true,
  timeout_s: 3600,
  lines: 0,
  ...extra,
})

describe('filters in the URL', () => {
  it('reads known filters and drops junk', () => {
    expect(
      filtersFromQuery({ user: ' bob ', env_id: '3', status: 'failed', path: './tests/a/' }),
    ).toEqual({ user: 'bob', env_id: '3', status: 'failed', path: './tests/a/' })
    expect(filtersFromQuery({ env_id: 'x', status: 'nope', user: '' })).toEqual({})
  })

  it('round-trips the sort, leaving the default out', () => {
    expect(toQuery({ user: 'bob' }, { key: 'id', desc: true })).toEqual({ user: 'bob' })
    const q = toQuery({}, { key: 'env_id', desc: false })
    expect(q).toEqual({ sort: 'env_id' })
    expect(sortFromQuery({ sort: '-path' })).toEqual({ key: 'path', desc: true })
    expect(sortFromQuery({ sort: 'bogus' })).toEqual({ key: 'id', desc: true })
  })

  it('matches live runs like the server filters (path is a prefix)', () => {
    expect(matchesFilters(run(1), { path: './tests/a/' })).toBe(true)
    expect(matchesFilters(run(1), { path: './tests/b/' })).toBe(false)
    expect(matchesFilters(run(1), { env_id: '1', user: 'alice', status: 'succeeded' })).toBe(true)
    expect(matchesFilters(run(1), { status: 'failed' })).toBe(false)
  })

  it('sorts by every column, ties by id', () => {
    const a = run(1, { username: 'zed', env_id: 9 })
    const b = run(2, { username: 'amy', env_id: 9 })
    expect(compareRuns(a, b, { key: 'username', desc: false })).toBeGreaterThan(0)
    expect(compareRuns(a, b, { key: 'env_id', desc: false })).toBeLessThan(0)
    expect(compareRuns(a, b, { key: 'id', desc: true })).toBeGreaterThan(0)
  })
})
