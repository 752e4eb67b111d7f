import { afterEach, describe, expect, it } from 'vitest'
import { createApp, h, nextTick } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'
import RunsTable from './RunsTable.vue'
import type { Run } from '../../lib/api/types'

function run(id: number, over: Record<string, unknown>): Run {
  return {
    id,
    username: 'alice',
    env_id: 1,
    path: './tests/',
    status: 'failed',
    created_at: '2026-12-01T10:00:00Z',
    started_at: '2026-12-01T10:00:01Z',
    finished_at: '2026-12-01T10:00:09Z',
    exit_code: 1,
    ...over,
  } as unknown as Run
}

function counts(over: Record<string, number | boolean>) {
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

async function mount(runs: Run[]) {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:p(.*)*', component: { render: () => null } }],
  })
  createApp({
    render: () => h(RunsTable, { runs, sort: { key: 'id', desc: true }, now: Date.now() }),
  })
    .use(router)
    .mount(el)
  await nextTick()
  return el
}

afterEach(() => {
  document.body.innerHTML = ''
})

describe('RunsTable', () => {
  it("shows each run's summary as text beside its status", async () => {
    const el = await mount([
      run(4, { summary: counts({ passed: 4, failed: 2, total: 6 }), outcome: 'tests_failed' }),
      run(3, { status: 'failed', exit_code: 5, summary: counts({}), outcome: 'no_tests' }),
      run(2, { status: 'running', summary: counts({ passed: 3, total: 3, final: false }) }),
      run(1, { status: 'succeeded' }),
    ])
    const text = (id: number) =>
      el.querySelector(`[data-run-id="${id}"] .c-status`)!.textContent!.replace(/\s+/g, ' ').trim()
    expect(text(4)).toBe('failed 2 failed, 4 passed')
    expect(text(3)).toBe('failed no tests collected')
    expect(text(2)).toBe('running 3 passed so far')
    expect(text(1)).toBe('succeeded')
  })
})
