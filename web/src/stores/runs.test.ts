import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { Run, RunFilters } from '../lib/api/types'

const listRuns = vi.fn<(f: RunFilters, limit: number, before?: number) => Promise<Run[]>>()
vi.mock('../lib/api/client', async (orig) => ({
  ...(await orig<typeof import('../lib/api/client')>()),
  api: {
    listRuns: (f: RunFilters, limit: number, before?: number) => listRuns(f, limit, before),
    envs: async () => [],
  },
}))

const { useRunsStore, PAGE_SIZE } = await import('./runs')

function run(id: number, extra: Partial<Run> = {}): Run {
  return {
    id,
    username: 'alice',
    priority: 0,
    created_at: '2026-11-25T07:00:00+00:00',
    env_id: 1,
    path: './tests/test_a.py',
    status: 'created',
    logs: false,
    timeout_s: 3600,
    lines: 0,
    ...extra,
  }
}

beforeEach(() => {
  setActivePinia(createPinia())
  listRuns.mockReset()
})

describe('runs store', () => {
  it('pages with before=<oldest id> until a short page', async () => {
    const first = Array.from({ length: PAGE_SIZE }, (_, i) => run(200 - i))
    listRuns.mockResolvedValueOnce(first).mockResolvedValueOnce([run(150), run(149)])
    const runs = useRunsStore()
    await runs.show({})
    expect(runs.hasMore).toBe(true)
    await runs.loadMore()
    expect(listRuns).toHaveBeenLastCalledWith({}, PAGE_SIZE, 151)
    expect(runs.listIds.length).toBe(PAGE_SIZE + 2)
    expect(runs.hasMore).toBe(false)
  })

  it('puts new runs from taskAdded on top, when they match the filters', async () => {
    listRuns.mockResolvedValue([run(5), run(3)])
    const runs = useRunsStore()
    await runs.show({ user: 'alice' })
    runs.upsert(run(6))
    runs.upsert(run(7, { username: 'bob' }))
    expect(runs.listIds).toEqual([6, 5, 3])
    runs.upsert(run(5, { status: 'running' }))
    expect(runs.byId[5]!.status).toBe('running')
    expect(runs.listIds).toEqual([6, 5, 3])
  })

  it('drops a run that no longer matches the filters', async () => {
    listRuns.mockResolvedValue([run(4, { status: 'running' }), run(3, { status: 'running' })])
    const runs = useRunsStore()
    await runs.show({ status: 'running' })
    runs.upsert(run(4, { status: 'succeeded' }))
    expect(runs.listIds).toEqual([3])
  })

  it('a filter change reloads from the first page', async () => {
    listRuns.mockResolvedValueOnce([run(2)]).mockResolvedValueOnce([run(9, { status: 'failed' })])
    const runs = useRunsStore()
    await runs.show({})
    await runs.show({ status: 'failed' })
    expect(listRuns).toHaveBeenLastCalledWith({ status: 'failed' }, PAGE_SIZE, undefined)
    expect(runs.listIds).toEqual([9])
  })
})
