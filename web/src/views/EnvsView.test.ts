import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import EnvsView from './EnvsView.vue'
import type { EnvView } from '../lib/api/envs'
import { useEnvsStore } from '../stores/envs'

type Reply = { status: number; body: unknown }
type Call = { method: string; url: string; body: unknown }

function env(id: number, over: Partial<EnvView> = {}): EnvView {
  return {
    id,
    name: `staging-${id}`,
    labels: ['staging'],
    description: '',
    state: 'free',
    run_id: null,
    holder: null,
    queue_length: 0,
    disabled_reason: null,
    ...over,
  }
}

const BUSY = env(1, {
  state: 'busy',
  run_id: 7,
  holder: { kind: 'run', run_id: 7, username: 'bob', since: '2026-12-01T10:00:00Z' },
  queue_length: 2,
})
const RESERVED = env(3, {
  state: 'reserved',
  holder: {
    kind: 'reservation',
    reservation_id: 41,
    username: 'carol',
    since: '2026-12-01T10:00:00Z',
    until: '2026-12-01T12:00:00Z',
    note: 'flashing firmware',
  },
})

let calls: Call[] = []

function mockFetch(routes: Record<string, Reply>) {
  calls = []
  return vi.fn(async (url: string, init?: RequestInit) => {
    const method = init?.method ?? 'GET'
    calls.push({ method, url, body: init?.body ? JSON.parse(String(init.body)) : undefined })
    const reply = routes[`${method} ${url}`] ?? { status: 404, body: { message: 'nope' } }
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
    routes: [
      { path: '/', component: EnvsView },
      { path: '/runs/:id', component: EnvsView },
    ],
  })
  const pinia = createPinia()
  const app = createApp(EnvsView).use(pinia).use(router)
  app.mount(el)
  await flush()
  return { el, store: useEnvsStore(pinia) }
}

function card(el: HTMLElement, id: number): HTMLElement {
  return el.querySelector<HTMLElement>(`[data-env-id="${id}"]`)!
}

function button(root: HTMLElement, name: string): HTMLButtonElement {
  const b = [...root.querySelectorAll('button')].find((x) => x.textContent!.trim() === name)
  if (!b) throw new Error(`no button ${name}`)
  return b
}

afterEach(() => {
  vi.unstubAllGlobals()
  vi.useRealTimers()
  document.body.innerHTML = ''
})

describe('EnvsView', () => {
  it('shows each environment with its state word, holder, waiting count and actions', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        'GET /api/envs': {
          status: 200,
          body: [BUSY, env(2), RESERVED, env(4, { state: 'disabled', disabled_reason: 'cable' })],
        },
      }),
    )
    const { el } = await mount()
    const busy = card(el, 1)
    expect(busy.textContent).toContain('staging-1')
    expect(busy.querySelector('.state')!.textContent!.trim()).toBe('busy')
    expect(busy.textContent).toContain('bob')
    expect(busy.querySelector('a[href="/runs/7"]')).not.toBeNull()
    expect(busy.textContent).toContain('2 waiting')
    expect(button(busy, 'Reserve')).toBeTruthy()
    expect(button(busy, 'Disable')).toBeTruthy()
    expect(card(el, 2).querySelector('.state')!.textContent!.trim()).toBe('free')
    const reserved = card(el, 3)
    expect(reserved.querySelector('.state')!.textContent!.trim()).toBe('reserved')
    expect(reserved.textContent).toContain('carol')
    expect(reserved.textContent).toContain('flashing firmware')
    expect(reserved.querySelector('time[datetime="2026-12-01T12:00:00Z"]')).not.toBeNull()
    expect(button(reserved, 'Release')).toBeTruthy()
    const disabled = card(el, 4)
    expect(disabled.querySelector('.state')!.textContent!.trim()).toBe('disabled')
    expect(disabled.textContent).toContain('cable')
    expect(button(disabled, 'Enable')).toBeTruthy()
  })

  it('updates a card from envChanged without a reload', async () => {
    vi.stubGlobal('fetch', mockFetch({ 'GET /api/envs': { status: 200, body: [env(1), env(2)] } }))
    const { el, store } = await mount()
    expect(card(el, 2).querySelector('.state')!.textContent!.trim()).toBe('free')
    store.apply({ ...BUSY, id: 2, name: 'staging-2' })
    await flush()
    expect(card(el, 2).querySelector('.state')!.textContent!.trim()).toBe('busy')
    expect(card(el, 2).textContent).toContain('bob')
    expect(calls.filter((c) => c.url === '/api/envs')).toHaveLength(1)
  })

  it('shows the queue in order with positions and expected starts', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        'GET /api/envs': { status: 200, body: [BUSY] },
        'GET /api/envs/1': {
          status: 200,
          body: {
            ...BUSY,
            queue: [
              {
                kind: 'run',
                run_id: 8,
                username: 'alice',
                path: './tests/a.py',
                priority: 0,
                queue_position: 1,
                eta: '2026-12-01T14:32:00Z',
              },
              { kind: 'reservation', reservation_id: 5, username: 'dave', duration_s: 3600 },
            ],
          },
        },
      }),
    )
    const { el } = await mount()
    const toggle = button(card(el, 1), 'Show queue')
    expect(toggle.getAttribute('aria-expanded')).toBe('false')
    toggle.click()
    await flush()
    expect(toggle.getAttribute('aria-expanded')).toBe('true')
    const items = [...card(el, 1).querySelectorAll('ol li')].map((li) => li.textContent!)
    expect(items).toHaveLength(2)
    expect(items[0]).toContain('position 1')
    expect(items[0]).toContain('run #8')
    expect(items[0]).toContain('expected about')
    expect(items[1]).toContain('position 2')
    expect(items[1]).toContain('dave')
  })

  it('reserves with duration and note, showing the server error beside the field', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        'GET /api/envs': { status: 200, body: [env(2)] },
        'POST /api/envs/2/reservations': {
          status: 400,
          body: {
            message: 'Data validation failed',
            code: 'validation_failed',
            errors: { duration_s: ['At most 3600 seconds (--max-reservation).'] },
          },
        },
      }),
    )
    localStorage.setItem('testscheduler.username', 'erin')
    const { el } = await mount()
    button(card(el, 2), 'Reserve').click()
    await flush()
    const form = card(el, 2).querySelector('form')!
    const duration = form.querySelector<HTMLSelectElement>('select[name=duration_s]')!
    duration.value = '7200'
    duration.dispatchEvent(new Event('change'))
    const note = form.querySelector<HTMLInputElement>('input[name=note]')!
    note.value = 'debugging the board'
    note.dispatchEvent(new Event('input'))
    form.dispatchEvent(new Event('submit'))
    await flush()
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({
      username: 'erin',
      duration_s: 7200,
      note: 'debugging the board',
    })
    expect(duration.getAttribute('aria-invalid')).toBe('true')
    const err = form.querySelector(`#${duration.getAttribute('aria-describedby')}`)!
    expect(err.textContent).toContain('At most 3600 seconds')
  })

  it('disables with a reason and enables again', async () => {
    const disabled = env(2, { state: 'disabled', disabled_reason: 'rewiring' })
    vi.stubGlobal(
      'fetch',
      mockFetch({
        'GET /api/envs': { status: 200, body: [env(2)] },
        'POST /api/envs/2/disable': { status: 200, body: disabled },
        'POST /api/envs/2/enable': { status: 200, body: env(2) },
      }),
    )
    const { el } = await mount()
    button(card(el, 2), 'Disable').click()
    await flush()
    const reason = card(el, 2).querySelector<HTMLInputElement>('input[name=reason]')!
    reason.value = 'rewiring'
    reason.dispatchEvent(new Event('input'))
    card(el, 2).querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(calls.find((c) => c.url === '/api/envs/2/disable')!.body).toEqual({ reason: 'rewiring' })
    expect(card(el, 2).querySelector('.state')!.textContent!.trim()).toBe('disabled')
    expect(card(el, 2).textContent).toContain('rewiring')
    button(card(el, 2), 'Enable').click()
    await flush()
    expect(card(el, 2).querySelector('.state')!.textContent!.trim()).toBe('free')
  })
})
