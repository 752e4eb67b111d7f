import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import QueueForm from './QueueForm.vue'

type Reply = { status: number; body: unknown }

function mockFetch(post: Reply, envsStatus = 200) {
  return vi.fn(async (url: string, init?: RequestInit) => {
    let reply: Reply = { status: 200, body: [] }
    if (url === '/api/envs' && envsStatus !== 200)
      reply = { status: envsStatus, body: { message: 'no', code: 'internal' } }
    else if (url === '/api/envs')
      reply = {
        status: 200,
        body: [
          { id: 1, run_id: 7 },
          { id: 2, run_id: null },
        ],
      }
    if (url === '/api/tests') reply = { status: 200, body: ['./tests/', './tests/test_a.py'] }
    if (url === '/api/testruns' && init?.method === 'POST') reply = post
    return new Response(JSON.stringify(reply.body), { status: reply.status })
  })
}

async function mount() {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', component: QueueForm },
      { path: '/runs/:id', component: QueueForm },
    ],
  })
  const app = createApp(QueueForm).use(createPinia()).use(router)
  app.mount(el)
  await flush()
  return { el, app }
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
  field.dispatchEvent(new Event(field.tagName === 'SELECT' ? 'change' : 'input'))
}

beforeEach(() => localStorage.clear())
afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('QueueForm', () => {
  it('offers the environments, marking busy ones, and picks a free one', async () => {
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: {} }))
    const { el } = await mount()
    const options = [...el.querySelectorAll<HTMLOptionElement>('#q-env option')]
    expect(options.map((o) => o.textContent)).toEqual(['1 — busy (run #7)', '2'])
    expect(el.querySelector<HTMLSelectElement>('#q-env')!.value).toBe('2')
    expect([...el.querySelectorAll('#q-tests option')].map((o) => o.getAttribute('value'))).toEqual(
      ['./tests/', './tests/test_a.py'],
    )
  })

  it('takes a number when the environments cannot be listed', async () => {
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: {} }, 500))
    const { el } = await mount()
    const env = el.querySelector<HTMLInputElement>('#q-env')!
    expect(env.tagName).toBe('INPUT')
    expect(env.type).toBe('number')
  })

  it('shows each field error beside its field and marks it aria-invalid', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        status: 400,
        body: {
          message: 'Data validation failed',
          code: 'validation_failed',
          errors: { username: ['length is lower than 3'], path: ['Not a discovered test path.'] },
        },
      }),
    )
    const { el } = await mount()
    input(el, 'q-name', 'ab')
    input(el, 'q-path', './tests/nope.py')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(el.querySelector('#q-name')!.getAttribute('aria-invalid')).toBe('true')
    expect(el.querySelector('#q-name-err')!.textContent).toContain('length is lower than 3')
    expect(el.querySelector('#q-path')!.getAttribute('aria-invalid')).toBe('true')
    expect(el.querySelector('#q-env')!.getAttribute('aria-invalid')).toBeNull()
    // Typing again clears that field's error.
    input(el, 'q-name', 'abc')
    await flush()
    expect(el.querySelector('#q-name')!.getAttribute('aria-invalid')).toBeNull()
    expect(localStorage.getItem('testscheduler.username')).toBe('abc')
  })

  it('says busy at Environment on 409 env_busy', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        status: 409,
        body: {
          message: 'Environment 2 is busy',
          code: 'env_busy',
          errors: { env_id: ['held by run 9'] },
        },
      }),
    )
    const { el } = await mount()
    input(el, 'q-name', 'alice')
    input(el, 'q-path', './tests/test_a.py')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(el.querySelector('#q-env')!.getAttribute('aria-invalid')).toBe('true')
    expect(el.querySelector('#q-env-err')!.textContent).toMatch(/busy/i)
  })
})
