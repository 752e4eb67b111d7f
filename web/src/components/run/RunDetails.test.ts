import { afterEach, describe, expect, it } from 'vitest'
import { createApp, h, nextTick } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'
import RunDetails from './RunDetails.vue'
import type { Run } from '../../lib/api/types'

async function mount(over: Record<string, unknown>) {
  const run = {
    id: 9,
    username: 'alice',
    env_id: 2,
    path: './tests/',
    status: 'failed',
    created_at: '2026-12-01T10:00:00Z',
    started_at: '2026-12-01T10:00:01Z',
    finished_at: '2026-12-01T10:00:09Z',
    exit_code: 5,
    ...over,
  } as unknown as Run
  const el = document.createElement('div')
  document.body.appendChild(el)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:p(.*)*', component: { render: () => null } }],
  })
  createApp({ render: () => h(RunDetails, { run }) })
    .use(router)
    .mount(el)
  await nextTick()
  return el
}

function detail(el: HTMLElement, term: string): string | undefined {
  const dt = [...el.querySelectorAll('dt')].find((d) => d.textContent!.startsWith(term))
  return dt?.nextElementSibling?.textContent?.replace(/\s+/g, ' ').trim()
}

afterEach(() => {
  document.body.innerHTML = ''
})

describe('RunDetails', () => {
  it('shows what a re-run repeats, what it selected, -k, -m, the revision and the outcome', async () => {
    const el = await mount({
      outcome: 'no_tests',
      revision: { commit: '89abcdef01234567', dirty: true },
      rerun_of: 4,
      select: ['tests/a.py::x', 'tests/b.py::y[1]'],
      keyword: 'login and not slow',
      markers: 'smoke',
    })
    expect(detail(el, 'Outcome')).toBe('no tests collected')
    expect(detail(el, 'Revision')).toBe('89abcde dirty')
    expect(detail(el, 'Repeats')).toBe('re-run of #4')
    expect(el.querySelector('a')!.getAttribute('href')).toBe('/runs/4')
    expect(detail(el, 'Keyword (-k)')).toBe('login and not slow')
    expect(detail(el, 'Markers (-m)')).toBe('smoke')
    expect([...el.querySelectorAll('.select span')].map((s) => s.textContent)).toEqual([
      'tests/a.py::x',
      'tests/b.py::y[1]',
    ])
  })

  it('leaves out what a plain run does not have', async () => {
    const el = await mount({ outcome: null, revision: null, rerun_of: null, select: null })
    for (const term of ['Outcome', 'Revision', 'Repeats', 'Keyword', 'Markers', 'Selected'])
      expect(detail(el, term)).toBeUndefined()
  })
})
