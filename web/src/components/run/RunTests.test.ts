import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, h, nextTick, reactive } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import RunTests from './RunTests.vue'
import type { TestResult } from '../../lib/api/results'
import type { Run } from '../../lib/api/types'

type Reply = { status: number; body: unknown }

let calls: string[] = []

function mockFetch(routes: Record<string, Reply | (() => Reply)>) {
  calls = []
  return vi.fn(async (url: string, init?: RequestInit) => {
    calls.push(`${init?.method ?? 'GET'} ${url}`)
    const r = routes[url]
    const reply = typeof r === 'function' ? r() : (r ?? { status: 404, body: { message: 'nope' } })
    return new Response(JSON.stringify(reply.body), { status: reply.status })
  })
}

function run(over: Record<string, unknown> = {}): Run {
  return {
    id: 7,
    username: 'alice',
    env_id: 2,
    path: './tests/',
    status: 'failed',
    created_at: '2026-12-01T10:00:00Z',
    started_at: '2026-12-01T10:00:01Z',
    finished_at: '2026-12-01T10:00:09Z',
    exit_code: 1,
    summary: {
      passed: 2,
      failed: 1,
      error: 1,
      skipped: 0,
      xfailed: 0,
      xpassed: 0,
      total: 4,
      final: true,
    },
    outcome: 'tests_failed',
    ...over,
  } as unknown as Run
}

const TESTS: TestResult[] = [
  {
    nodeid: 'tests/test_a.py::test_one',
    outcome: 'passed',
    duration_s: 0.01,
    message: null,
    line: 3,
  },
  {
    nodeid: 'tests/test_a.py::test_two',
    outcome: 'failed',
    duration_s: 0.2,
    message: 'assert 1 == 2',
    line: 41,
  },
  {
    nodeid: 'tests/test_b.py::test_three',
    outcome: 'passed',
    duration_s: 1.5,
    message: null,
    line: 50,
  },
  {
    nodeid: 'tests/test_b.py::test_four',
    outcome: 'error',
    duration_s: null,
    message: 'fixture broke',
    line: 60,
  },
]

async function flush() {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

async function mount(props: { run: Run }) {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const state = reactive({ ...props })
  const jumps: number[] = []
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:p(.*)*', component: { render: () => null } }],
  })
  const app = createApp({
    render: () => h(RunTests, { run: state.run, onJump: (line: number) => jumps.push(line) }),
  })
    .use(createPinia())
    .use(router)
  app.mount(el)
  await flush()
  return { el, app, state, jumps }
}

function rowIds(el: HTMLElement): string[] {
  return [...el.querySelectorAll<HTMLElement>('[role=row][data-nodeid]')].map(
    (r) => r.dataset.nodeid!,
  )
}

function select(el: HTMLElement, id: string, value: string) {
  const field = el.querySelector<HTMLInputElement | HTMLSelectElement>(`#${id}`)!
  field.value = value
  field.dispatchEvent(new Event(field.tagName === 'SELECT' ? 'change' : 'input'))
}

// jsdom lays nothing out: give the table's scroller a height, so the
// virtualiser has rows to render.
const clientHeight = Object.getOwnPropertyDescriptor(Element.prototype, 'clientHeight')!
beforeEach(() => {
  localStorage.clear()
  Object.defineProperty(Element.prototype, 'clientHeight', {
    configurable: true,
    get() {
      return (this as Element).classList.contains('scroller') ? 340 : 0
    },
  })
})
afterEach(() => {
  Object.defineProperty(Element.prototype, 'clientHeight', clientHeight)
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('RunTests', () => {
  it('has a section headed Tests with the summary and failures first', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': { status: 200, body: { id: 7, tests: TESTS } } }),
    )
    const { el } = await mount({ run: run() })
    expect(el.querySelector('h2')!.textContent).toBe('Tests')
    expect(el.querySelector('[data-testid=run-summary]')!.textContent).toBe(
      '1 failed, 1 error, 2 passed',
    )
    expect(rowIds(el)).toEqual([
      'tests/test_a.py::test_two',
      'tests/test_b.py::test_four',
      'tests/test_a.py::test_one',
      'tests/test_b.py::test_three',
    ])
    const first = el.querySelector('[role=row][data-nodeid]')!
    expect(first.textContent).toContain('failed')
    expect(first.textContent).toContain('assert 1 == 2')
    expect(first.textContent).toContain('200ms')
  })

  it("links each test to its log line, 0-based line → #L of the viewer's numbering", async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': { status: 200, body: { id: 7, tests: TESTS } } }),
    )
    const { el, jumps } = await mount({ run: run() })
    const link = el.querySelector<HTMLAnchorElement>(
      '[data-nodeid="tests/test_a.py::test_two"] a[href^="#L"]',
    )!
    expect(link.getAttribute('href')).toBe('#L42')
    expect(link.textContent).toBe('L42')
    link.click()
    expect(jumps).toEqual([41])
  })

  it('filters by outcome and searches by name', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': { status: 200, body: { id: 7, tests: TESTS } } }),
    )
    const { el } = await mount({ run: run() })
    const options = [...el.querySelectorAll<HTMLOptionElement>('#tests-outcome option')]
    expect(options.map((o) => o.textContent!.trim())).toEqual([
      'all (4)',
      'failed or error (2)',
      'failed (1)',
      'error (1)',
      'passed (2)',
    ])
    select(el, 'tests-outcome', 'passed')
    await flush()
    expect(rowIds(el)).toEqual(['tests/test_a.py::test_one', 'tests/test_b.py::test_three'])
    select(el, 'tests-search', 'THREE')
    await flush()
    expect(rowIds(el)).toEqual(['tests/test_b.py::test_three'])
    select(el, 'tests-search', 'nothing like it')
    await flush()
    expect(el.textContent).toContain('No test matches.')
  })

  it('keeps the DOM small with 20,000 tests', async () => {
    const many: TestResult[] = Array.from({ length: 20_000 }, (_, i) => ({
      nodeid: `tests/test_many.py::test_${i}`,
      outcome: i % 1000 === 999 ? 'failed' : 'passed',
      duration_s: 0.001,
      message: null,
      line: i,
    }))
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': { status: 200, body: { id: 7, tests: many } } }),
    )
    const { el } = await mount({ run: run() })
    const rows = rowIds(el)
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.length).toBeLessThan(100)
    expect(rows[0]).toBe('tests/test_many.py::test_999')
    expect(el.querySelector('[role=table]')!.getAttribute('aria-rowcount')).toBe('20001')
  })

  it('opens a test’s history: marks linking runs, env and revision in the title', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/testruns/7/results': { status: 200, body: { id: 7, tests: TESTS } },
        '/api/results/history?nodeid=tests%2Ftest_a.py%3A%3Atest_two&limit=30': {
          status: 200,
          body: [
            {
              run_id: 7,
              env_id: 2,
              revision: { commit: 'abcdef0123456789', dirty: true },
              outcome: 'failed',
              duration_s: 0.2,
              finished_at: '2026-12-01T10:00:09Z',
            },
            {
              run_id: 5,
              env_id: 1,
              revision: null,
              outcome: 'passed',
              duration_s: 0.1,
              finished_at: '2026-12-01T09:00:00Z',
            },
          ],
        },
      }),
    )
    const { el } = await mount({ run: run() })
    const button = el.querySelector<HTMLButtonElement>(
      '[data-nodeid="tests/test_a.py::test_two"] button',
    )!
    expect(button.getAttribute('aria-expanded')).toBe('false')
    button.click()
    await flush()
    expect(button.getAttribute('aria-expanded')).toBe('true')
    const marks = [...el.querySelectorAll<HTMLAnchorElement>('.strip a')]
    expect(marks.map((a) => a.getAttribute('href'))).toEqual(['/runs/7', '/runs/5'])
    expect(marks[0]!.title).toContain('failed on env 2, revision abcdef0 dirty')
    expect(marks[0]!.getAttribute('aria-current')).toBe('page')
    expect(marks[1]!.title).toContain('passed on env 1, revision —')
    expect(el.textContent).toContain('Last 2 results, newest first: 1 failed')
  })

  it('shows the live summary while running and loads the table when the run ends', async () => {
    let tests: TestResult[] = []
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': () => ({ status: 200, body: { id: 7, tests } }) }),
    )
    const live = run({
      status: 'running',
      finished_at: null,
      exit_code: null,
      outcome: null,
      summary: {
        passed: 3,
        failed: 0,
        error: 0,
        skipped: 0,
        xfailed: 0,
        xpassed: 0,
        total: 3,
        final: false,
      },
    })
    const { el, state } = await mount({ run: live })
    expect(el.querySelector('[data-testid=run-summary]')!.textContent).toBe('3 passed so far')
    expect(el.textContent).toContain('fills in when the run ends')
    tests = TESTS
    state.run = run()
    await flush()
    expect(calls.filter((c) => c.endsWith('/results'))).toHaveLength(2)
    expect(rowIds(el)).toHaveLength(4)
  })

  it('shows a test that failed and then errored in teardown as two rows, opened apart', async () => {
    const twice: TestResult[] = [
      { nodeid: 'tests/t.py::test_x', outcome: 'failed', duration_s: 0.1, message: 'no', line: 5 },
      {
        nodeid: 'tests/t.py::test_x',
        outcome: 'error',
        duration_s: 0.1,
        message: 'teardown',
        line: 9,
      },
    ]
    vi.stubGlobal(
      'fetch',
      mockFetch({
        '/api/testruns/7/results': { status: 200, body: { id: 7, tests: twice } },
        '/api/results/history?nodeid=tests%2Ft.py%3A%3Atest_x&limit=30': { status: 200, body: [] },
      }),
    )
    const { el } = await mount({ run: run() })
    const rows = [...el.querySelectorAll<HTMLElement>('[role=row][data-nodeid]')]
    expect(rows.map((r) => r.querySelector('a[href^="#L"]')!.getAttribute('href'))).toEqual([
      '#L6',
      '#L10',
    ])
    rows[1]!.querySelector('button')!.click()
    await flush()
    const buttons = [...el.querySelectorAll('[role=row][data-nodeid] button')]
    expect(buttons.map((b) => b.getAttribute('aria-expanded'))).toEqual(['false', 'true'])
    expect(el.querySelectorAll('.c-history')).toHaveLength(1)
  })

  it('says clearly when the results cannot be loaded', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({ '/api/testruns/7/results': { status: 500, body: { message: 'disk on fire' } } }),
    )
    const { el } = await mount({ run: run() })
    expect(el.querySelector('[role=alert]')!.textContent).toContain('disk on fire')
  })
})
