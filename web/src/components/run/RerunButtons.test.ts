import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, h, nextTick } from 'vue'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import RerunButtons from './RerunButtons.vue'

type Reply = { status: number; body: unknown }

let posted: { url: string; body: unknown }[] = []

function mockFetch(reply: Reply) {
  posted = []
  return vi.fn(async (url: string, init?: RequestInit) => {
    if (init?.method === 'POST') posted.push({ url, body: JSON.parse(String(init.body)) })
    return new Response(JSON.stringify(reply.body), { status: reply.status })
  })
}

async function flush() {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

async function mount(hasFailures: boolean): Promise<{ el: HTMLElement; router: Router }> {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:p(.*)*', component: { render: () => null } }],
  })
  await router.push('/runs/7')
  createApp({ render: () => h(RerunButtons, { runId: 7, hasFailures }) })
    .use(createPinia())
    .use(router)
    .mount(el)
  await flush()
  return { el, router }
}

function button(el: HTMLElement, name: string): HTMLButtonElement | undefined {
  return [...el.querySelectorAll('button')].find((b) => b.textContent!.trim() === name)
}

const NEW_RUN = { id: 12, status: 'created', username: 'alice', env_id: 2, path: './tests/' }

beforeEach(() => localStorage.clear())
afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('RerunButtons', () => {
  it('offers Re-run failed only when the run has failures', async () => {
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: NEW_RUN }))
    expect(button((await mount(false)).el, 'Re-run failed')).toBeUndefined()
    document.body.innerHTML = ''
    const { el } = await mount(true)
    expect(button(el, 'Re-run')).toBeDefined()
    expect(button(el, 'Re-run failed')).toBeDefined()
  })

  it("re-runs the failed ones with the form's stored name, then opens the new run", async () => {
    localStorage.setItem('testscheduler.username', 'alice')
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: NEW_RUN }))
    const { el, router } = await mount(true)
    expect(el.querySelector('input')).toBeNull()
    button(el, 'Re-run failed')!.click()
    await flush()
    expect(posted).toEqual([
      { url: '/api/testruns/7/rerun', body: { username: 'alice', wait: true, only_failed: true } },
    ])
    await vi.waitFor(() => expect(router.currentRoute.value.path).toBe('/runs/12'))
  })

  it('re-runs everything without only_failed', async () => {
    localStorage.setItem('testscheduler.username', 'bob')
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: NEW_RUN }))
    const { el, router } = await mount(false)
    button(el, 'Re-run')!.click()
    await flush()
    expect(posted[0]!.body).toEqual({ username: 'bob', wait: true })
    await vi.waitFor(() => expect(router.currentRoute.value.path).toBe('/runs/12'))
  })

  it('asks for a name when none is stored, and remembers it', async () => {
    vi.stubGlobal('fetch', mockFetch({ status: 201, body: NEW_RUN }))
    const { el } = await mount(true)
    button(el, 'Re-run')!.click()
    await flush()
    expect(posted).toEqual([])
    const input = el.querySelector<HTMLInputElement>('input')!
    expect(el.querySelector(`label[for="${input.id}"]`)!.textContent).toBe('Your name')
    expect(input.getAttribute('aria-invalid')).toBe('true')
    input.value = 'carol'
    input.dispatchEvent(new Event('input'))
    button(el, 'Re-run')!.click()
    await flush()
    expect(posted[0]!.body).toEqual({ username: 'carol', wait: true })
    expect(localStorage.getItem('testscheduler.username')).toBe('carol')
  })

  it("shows the server's refusal and stays", async () => {
    localStorage.setItem('testscheduler.username', 'alice')
    vi.stubGlobal(
      'fetch',
      mockFetch({
        status: 400,
        body: {
          message: 'invalid request',
          code: 'validation',
          errors: { only_failed: ['run 7 has no failed or errored tests'] },
        },
      }),
    )
    const { el, router } = await mount(true)
    button(el, 'Re-run failed')!.click()
    await flush()
    expect(el.querySelector('[role=alert]')!.textContent).toContain(
      'Could not re-run: only_failed: run 7 has no failed or errored tests',
    )
    expect(router.currentRoute.value.path).toBe('/runs/7')
  })
})
