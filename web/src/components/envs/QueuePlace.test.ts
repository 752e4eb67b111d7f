import { afterEach, describe, expect, it, vi } from 'vitest'
import { computed, createApp, defineComponent, h, nextTick } from 'vue'
import { createPinia } from 'pinia'
import QueuePlace from './QueuePlace.vue'
import type { Run } from '../../lib/api/types'
import { useRunsStore } from '../../stores/runs'

const QUEUED: Run = {
  id: 9,
  username: 'bob',
  priority: 0,
  created_at: '2026-12-01T10:00:00Z',
  env_id: 3,
  path: './tests/a.py',
  status: 'queued',
  lines: 0,
  timeout_s: 60,
  logs: false,
  queue_position: 2,
  eta: null,
}

async function flush() {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('QueuePlace', () => {
  it('says the position, the environment by name, and the expected start once known, live', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(
        async () =>
          new Response(
            JSON.stringify([
              {
                id: 3,
                name: 'staging-3',
                labels: [],
                description: '',
                state: 'busy',
                run_id: 1,
                holder: null,
                queue_length: 2,
                disabled_reason: null,
              },
            ]),
          ),
      ),
    )
    const pinia = createPinia()
    const el = document.createElement('div')
    document.body.appendChild(el)
    const Host = defineComponent(() => {
      const runs = useRunsStore()
      const run = computed(() => runs.byId[9])
      return () => (run.value ? h(QueuePlace, { run: run.value }) : null)
    })
    createApp(Host).use(pinia).mount(el)
    const runs = useRunsStore(pinia)
    runs.upsert(QUEUED)
    await flush()
    expect(el.textContent).toContain('position 2 for staging-3')
    expect(el.textContent).not.toContain('expected')
    // taskChanged: it moved up and an estimate is known.
    runs.upsert({ ...QUEUED, queue_position: 1, eta: '2026-12-01T14:32:00Z' })
    await flush()
    expect(el.textContent).toContain('position 1 for staging-3')
    expect(el.textContent).toContain('expected to start about')
    expect(el.querySelector('time')!.getAttribute('datetime')).toBe('2026-12-01T14:32:00Z')
  })

  it('names the labels while a label run waits for any environment', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response('[]')),
    )
    const el = document.createElement('div')
    document.body.appendChild(el)
    createApp(QueuePlace, { run: { ...QUEUED, env_id: null, labels: ['staging', 'eu'] } })
      .use(createPinia())
      .mount(el)
    await flush()
    expect(el.textContent).toContain('position 2 for any environment labelled staging and eu')
  })
})
