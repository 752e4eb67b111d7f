// Test helpers for the accounts pages: a fake server behind `fetch` and a
// mounted app with a memory router. Used by *.test.ts only.
import { vi } from 'vitest'
import { createApp, nextTick, type Component } from 'vue'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router, type RouteRecordRaw } from 'vue-router'

export type Reply = { status: number; body?: unknown; headers?: Record<string, string> }
export type Call = { method: string; url: string; body: unknown }
export type Routes = Record<string, Reply | ((body: unknown) => Reply)>

/** Stubs `fetch`: `routes['GET /api/me']` answers; anything else is a 404. */
export function fakeServer(routes: Routes): Call[] {
  const calls: Call[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init?: RequestInit) => {
      const method = init?.method ?? 'GET'
      const body: unknown = init?.body ? JSON.parse(String(init.body)) : undefined
      calls.push({ method, url, body })
      const route = routes[`${method} ${url}`]
      const reply = typeof route === 'function' ? route(body) : route
      const r = reply ?? { status: 404, body: { message: 'not found', code: 'not_found' } }
      const text = r.body === undefined ? '' : JSON.stringify(r.body)
      return new Response(r.status === 204 ? null : text, { status: r.status, headers: r.headers })
    }),
  )
  return calls
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 12; i++) {
    await Promise.resolve()
    await nextTick()
    await new Promise((r) => setTimeout(r, 0))
  }
}

const Blank: Component = { render: () => null }

export interface Mounted {
  el: HTMLElement
  router: Router
  pinia: Pinia
}

/** Mounts `root` (or a RouterView over `routes`) at `path`, after `setup` ran with the pinia. */
export async function mount(
  root: Component,
  opts: { path?: string; routes?: RouteRecordRaw[]; setup?: (router: Router) => void } = {},
): Promise<Mounted> {
  const el = document.createElement('div')
  document.body.appendChild(el)
  const pinia = createPinia()
  setActivePinia(pinia)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: opts.routes ?? [
      { path: '/', name: 'runs', component: Blank },
      { path: '/login', name: 'login', component: Blank },
      { path: '/:rest(.*)*', component: Blank },
    ],
  })
  const app = createApp(root).use(pinia)
  opts.setup?.(router)
  app.use(router)
  await router.push(opts.path ?? '/')
  app.mount(el)
  await flush()
  return { el, router, pinia }
}

export function input(el: HTMLElement, selector: string, value: string): void {
  const field = el.querySelector<HTMLInputElement>(selector)
  if (!field) throw new Error(`no field ${selector}`)
  field.value = value
  field.dispatchEvent(new Event(field.tagName === 'SELECT' ? 'change' : 'input'))
}

export function button(el: HTMLElement, text: string): HTMLButtonElement | undefined {
  return [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text)
}
