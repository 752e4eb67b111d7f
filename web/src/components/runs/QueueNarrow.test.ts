import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import QueueForm from './QueueForm.vue'
import { narrowBody } from './QueueNarrow.vue'

let posted: unknown[] = []

function mockFetch() {
  posted = []
  return vi.fn(async (url: string, init?: RequestInit) => {
    let body: unknown = []
    if (url === '/api/envs')
      body = [
        {
          id: 4,
          name: 'rig-4',
          labels: [],
          description: '',
          state: 'free',
          run_id: null,
          holder: null,
          queue_length: 0,
          disabled_reason: null,
        },
      ]
    if (url === '/api/testruns' && init?.method === 'POST') {
      posted.push(JSON.parse(String(init.body)))
      body = { id: 3, status: 'created' }
    }
    return new Response(JSON.stringify(body), { status: url === '/api/testruns' ? 201 : 200 })
  })
}

async function flush() {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

function input(el: HTMLElement, id: string, value: string) {
  const field = el.querySelector<HTMLInputElement>(`#${id}`)!
  field.value = value
  field.dispatchEvent(new Event('input'))
}

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('QueueNarrow', () => {
  it('sends only the -k and -m given, trimmed', () => {
    expect(narrowBody({ keyword: '', markers: ' ' })).toEqual({})
    expect(narrowBody({ keyword: ' login and not slow ', markers: 'smoke' })).toEqual({
      keyword: 'login and not slow',
      markers: 'smoke',
    })
  })

  it('adds keyword and markers to the queue form’s run', async () => {
    vi.stubGlobal('fetch', mockFetch())
    const el = document.createElement('div')
    document.body.appendChild(el)
    const router = createRouter({
      history: createMemoryHistory(),
      routes: [{ path: '/:p(.*)*', component: { render: () => null } }],
    })
    createApp(QueueForm).use(createPinia()).use(router).mount(el)
    await flush()
    input(el, 'q-name', 'alice')
    input(el, 'q-path', './tests/')
    expect(el.querySelector('label[for="q-keyword"]')!.textContent).toBe('Keyword (-k)')
    expect(el.querySelector('label[for="q-markers"]')!.textContent).toBe('Markers (-m)')
    input(el, 'q-keyword', 'login')
    input(el, 'q-markers', 'smoke and not slow')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(posted[0]).toMatchObject({
      username: 'alice',
      env_id: 4,
      path: './tests/',
      keyword: 'login',
      markers: 'smoke and not slow',
    })
  })
})
