import { afterEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useResultsStore } from './results'

function mockFetch() {
  return vi.fn(async (url: string) => {
    const id = Number(/testruns\/(\d+)\/results/.exec(url)?.[1])
    return new Response(JSON.stringify({ id, summary: null, tests: [] }), { status: 200 })
  })
}

afterEach(() => vi.unstubAllGlobals())

describe('results store', () => {
  it('keeps the results of the last five runs loaded, least recent dropped', async () => {
    vi.stubGlobal('fetch', mockFetch())
    setActivePinia(createPinia())
    const store = useResultsStore()
    for (const id of [1, 2, 3, 4, 5]) await store.load(id)
    await store.load(1)
    await store.load(6)
    expect(Object.keys(store.byRun).map(Number).sort()).toEqual([1, 3, 4, 5, 6])
  })

  it('lets a slower, older answer not overwrite a newer one', async () => {
    const replies: ((r: Response) => void)[] = []
    vi.stubGlobal(
      'fetch',
      vi.fn(() => new Promise<Response>((ok) => replies.push(ok))),
    )
    setActivePinia(createPinia())
    const store = useResultsStore()
    const first = store.load(7)
    const second = store.load(7)
    const body = (n: number) =>
      new Response(
        JSON.stringify({
          id: 7,
          summary: null,
          tests: Array.from({ length: n }, (_, i) => ({
            nodeid: `t${i}`,
            outcome: 'passed',
            duration_s: null,
            message: null,
            line: null,
          })),
        }),
      )
    replies[1]!(body(2))
    await second
    replies[0]!(body(1))
    await first
    expect(store.byRun[7]!.tests).toHaveLength(2)
  })
})
