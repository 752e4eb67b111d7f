import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import QueueForm from './QueueForm.vue'

type Reply = { status: number; body: unknown }

const ENVS = [
  {
    id: 1,
    name: 'staging-1',
    labels: ['staging', 'eu'],
    description: '',
    state: 'busy',
    run_id: 7,
    holder: { kind: 'run', run_id: 7, username: 'bob', since: '2026-12-01T10:00:00Z' },
    queue_length: 2,
    disabled_reason: null,
  },
  {
    id: 2,
    name: 'staging-2',
    labels: ['staging'],
    description: '',
    state: 'free',
    run_id: null,
    holder: null,
    queue_length: 0,
    disabled_reason: null,
  },
  {
    id: 3,
    name: 'board-3',
    labels: ['board'],
    description: '',
    state: 'disabled',
    run_id: null,
    holder: null,
    queue_length: 0,
    disabled_reason: 'broken cable',
  },
]

let posted: unknown[] = []

function mockFetch(post: Reply, envsStatus = 200) {
  posted = []
  return vi.fn(async (url: string, init?: RequestInit) => {
    let reply: Reply = { status: 200, body: [] }
    if (url === '/api/envs' && envsStatus !== 200)
      reply = { status: envsStatus, body: { message: 'no', code: 'internal' } }
    else if (url === '/api/envs')
      reply = {
        status: 200,
        body: ENVS,
      }
    if (url === '/api/tests') reply = { status: 200, body: ['./tests/', './tests/test_a.py'] }
    if (url === '/api/testruns' && init?.method === 'POST') {
      posted.push(JSON.parse(String(init.body)))
      reply = post
    }
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
  it('offers the environments by name, state and queue, then labels, and picks a free one', async () => {
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: {} }))
    const { el } = await mount()
    const options = [...el.querySelectorAll<HTMLOptionElement>('#q-env option')]
    expect(options.map((o) => [o.value, o.textContent!.trim()])).toEqual([
      ['1', 'staging-1 — busy, 2 waiting'],
      ['2', 'staging-2 — free'],
      ['3', 'board-3 — disabled'],
      ['label:board', 'any environment labelled board'],
      ['label:eu', 'any environment labelled eu'],
      ['label:staging', 'any environment labelled staging'],
    ])
    expect(el.querySelector<HTMLSelectElement>('#q-env')!.value).toBe('2')
    // Wait if busy is on by default.
    const wait = el.querySelector<HTMLInputElement>('#q-wait')!
    expect(wait.checked).toBe(true)
    expect(el.querySelector(`label[for="q-wait"]`)!.textContent).toBe('Wait if busy')
    expect([...el.querySelectorAll('#q-tests option')].map((o) => o.getAttribute('value'))).toEqual(
      ['./tests/', './tests/test_a.py'],
    )
  })

  it('sends wait, the chosen environment or label, and priority only when given', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({ status: 201, body: { id: 12, status: 'queued', queue_position: 3 } }),
    )
    const { el } = await mount()
    input(el, 'q-name', 'alice')
    input(el, 'q-env', '1')
    input(el, 'q-path', './tests/test_a.py')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(posted[0]).toEqual({
      username: 'alice',
      env_id: 1,
      path: './tests/test_a.py',
      wait: true,
    })
    expect(el.querySelector('[role=status]')!.textContent).toContain('position 3')

    const wait = el.querySelector<HTMLInputElement>('#q-wait')!
    wait.checked = false
    wait.dispatchEvent(new Event('change'))
    input(el, 'q-env', 'label:staging')
    input(el, 'q-priority', '5')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(posted[1]).toEqual({
      username: 'alice',
      labels: ['staging'],
      path: './tests/test_a.py',
      wait: false,
      priority: 5,
    })
  })

  it('shows every field error of one answer at once', async () => {
    vi.stubGlobal(
      'fetch',
      mockFetch({
        status: 400,
        body: {
          message: 'Data validation failed',
          code: 'validation_failed',
          errors: {
            username: ['Not a valid string.'],
            labels: ['No environment has the label "x".'],
            path: ['Not a discovered test path.'],
            priority: ['Must be between -10 and 10.'],
          },
        },
      }),
    )
    const { el } = await mount()
    input(el, 'q-env', 'label:eu')
    input(el, 'q-priority', '11')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    for (const [id, text] of [
      ['q-name', 'Not a valid string.'],
      ['q-env', 'No environment has the label'],
      ['q-path', 'Not a discovered test path.'],
      ['q-priority', 'Must be between -10 and 10.'],
    ] as const) {
      expect(el.querySelector(`#${id}`)!.getAttribute('aria-invalid')).toBe('true')
      expect(el.querySelector(`#${id}-err`)!.textContent).toContain(text)
    }
    expect(el.querySelector('[role=alert]')).toBeNull()
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
