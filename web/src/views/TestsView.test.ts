import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import TestsView from './TestsView.vue'

type Reply = { status: number; body: unknown }

let calls: string[] = []

function mockFetch(routes: Record<string, Reply>) {
  calls = []
  return vi.fn(async (url: string) => {
    calls.push(url)
    const reply = routes[url] ?? { status: 404, body: { message: 'nope' } }
    return new Response(JSON.stringify(reply.body), { status: reply.status })
  })
}

async function flush() {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

async function mount() {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:p(.*)*', component: TestsView }],
  })
  await router.push('/tests')
  createApp(TestsView).use(createPinia()).use(router).mount(el)
  await flush()
  return el
}

const ENVS = [
  {
    id: 2,
    name: 'board-2',
    labels: [],
    description: '',
    state: 'free',
    run_id: null,
    holder: null,
    queue_length: 0,
    disabled_reason: null,
  },
]

const VERDICTS = {
  tests: [
    {
      nodeid: 'tests/test_env.py::test_needs_env_1',
      verdict: 'env_suspect',
      envs: [2],
      evidence: [4, 6, 5],
    },
    { nodeid: 'tests/test_flip.py::test_coin', verdict: 'flaky', envs: [1], evidence: [8, 9] },
    { nodeid: 'tests/test_x.py::test_gone', verdict: 'broken', envs: [1, 2], evidence: [10] },
  ],
  envs: [{ id: 2, verdict: 'suspect', tests: ['a', 'b', 'c'] }],
}

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('TestsView', () => {
  it('lists each verdict with its node id, its word, environments and evidence runs', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/verdicts': { status: 200, body: VERDICTS },
        '/api/envs': { status: 200, body: ENVS },
      }),
    )
    const el = await mount()
    expect(el.querySelector('h1')!.textContent).toBe('Tests')
    const items = [...el.querySelectorAll<HTMLElement>('.verdict')]
    expect(items.map((i) => [i.dataset.nodeid, i.querySelector('.badge')!.textContent])).toEqual([
      ['tests/test_env.py::test_needs_env_1', 'environment suspect'],
      ['tests/test_flip.py::test_coin', 'flaky'],
      ['tests/test_x.py::test_gone', 'broken'],
    ])
    const first = items[0]!
    expect(first.textContent).toContain('board-2 (#2)')
    expect(
      [...first.querySelectorAll<HTMLAnchorElement>('.evidence a')].map((a) =>
        a.getAttribute('href'),
      ),
    ).toEqual(['/runs/4', '/runs/6', '/runs/5'])
    const suspect = el.querySelector<HTMLElement>('[data-testid=suspect-envs]')!
    expect(suspect.textContent).toContain('board-2 (#2)')
    expect(suspect.textContent).toContain('3 tests fail only here')
    expect(suspect.querySelector('a')!.getAttribute('href')).toBe('/envs')
    expect([...suspect.querySelectorAll('details li')].map((li) => li.textContent)).toEqual([
      'a',
      'b',
      'c',
    ])
  })

  it('says so for a healthy history', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/verdicts': { status: 200, body: { tests: [], envs: [] } },
        '/api/envs': { status: 200, body: ENVS },
      }),
    )
    const el = await mount()
    expect(el.textContent).toContain('A healthy history')
    expect(el.querySelector('.verdict')).toBeNull()
  })

  it('asks for another window', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/verdicts': { status: 200, body: { tests: [], envs: [] } },
        '/api/verdicts?window=50': { status: 200, body: VERDICTS },
        '/api/envs': { status: 200, body: ENVS },
      }),
    )
    const el = await mount()
    const select = el.querySelector<HTMLSelectElement>('#verdict-window')!
    select.value = '50'
    select.dispatchEvent(new Event('change'))
    await flush()
    expect(calls).toContain('/api/verdicts?window=50')
    expect(el.querySelectorAll('.verdict')).toHaveLength(3)
  })

  it('shows an error it could not load past, with a retry', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/verdicts': { status: 500, body: { message: 'database is locked' } },
        '/api/envs': { status: 200, body: ENVS },
      }),
    )
    const el = await mount()
    expect(el.querySelector('[role=alert]')!.textContent).toContain('database is locked')
    expect(el.querySelector('[role=alert] button')!.textContent).toBe('Retry')
  })
})
