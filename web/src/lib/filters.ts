// Runs-list filters and sorting, as they live in the URL's query string.
import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import type { Run, RunFilters } from './api/types'
import { RUN_STATUSES } from './api/types'

export const SORT_KEYS = [
  'id',
  'username',
  'env_id',
  'path',
  'status',
  'created_at',
  'duration',
] as const
export type SortKey = (typeof SORT_KEYS)[number]
export interface Sort {
  key: SortKey
  desc: boolean
}
export const DEFAULT_SORT: Sort = { key: 'id', desc: true }

function str(value: LocationQuery[string] | undefined): string {
  const v = Array.isArray(value) ? value[0] : value
  return typeof v === 'string' ? v.trim() : ''
}

export function filtersFromQuery(query: LocationQuery): RunFilters {
  const filters: RunFilters = {}
  const user = str(query.user)
  const env = str(query.env_id)
  const status = str(query.status)
  const path = str(query.path)
  if (user) filters.user = user
  if (/^\d+$/.test(env)) filters.env_id = env
  if ((RUN_STATUSES as readonly string[]).includes(status)) filters.status = status
  if (path) filters.path = path
  return filters
}

export function sortFromQuery(query: LocationQuery): Sort {
  const raw = str(query.sort)
  if (!raw) return DEFAULT_SORT
  const desc = raw.startsWith('-')
  const key = (desc ? raw.slice(1) : raw) as SortKey
  return SORT_KEYS.includes(key) ? { key, desc } : DEFAULT_SORT
}

export function toQuery(filters: RunFilters, sort: Sort): LocationQueryRaw {
  const query: LocationQueryRaw = { ...filters }
  if (sort.key !== DEFAULT_SORT.key || sort.desc !== DEFAULT_SORT.desc) {
    query.sort = `${sort.desc ? '-' : ''}${sort.key}`
  }
  return query
}

export function sameFilters(a: RunFilters, b: RunFilters): boolean {
  return a.user === b.user && a.env_id === b.env_id && a.status === b.status && a.path === b.path
}

/** Whether a run pushed over `/ws` belongs in a list filtered this way. */
export function matchesFilters(run: Run, filters: RunFilters): boolean {
  if (filters.user && run.username !== filters.user) return false
  if (filters.env_id && String(run.env_id) !== filters.env_id) return false
  if (filters.status && run.status !== filters.status) return false
  if (filters.path && !run.path.startsWith(filters.path)) return false
  return true
}

function durationOf(run: Run, now: number): number {
  if (!run.started_at) return -1
  const end = run.finished_at ? Date.parse(run.finished_at) : now
  return end - Date.parse(run.started_at)
}

export function compareRuns(a: Run, b: Run, sort: Sort, now = Date.now()): number {
  let d: number
  switch (sort.key) {
    case 'id':
      d = a.id - b.id
      break
    case 'env_id':
      d = (a.env_id ?? 0) - (b.env_id ?? 0)
      break
    case 'duration':
      d = durationOf(a, now) - durationOf(b, now)
      break
    case 'created_at':
      d = Date.parse(a.created_at) - Date.parse(b.created_at)
      break
    default:
      d = a[sort.key].localeCompare(b[sort.key])
  }
  if (d === 0) d = a.id - b.id
  return sort.desc ? -d : d
}
