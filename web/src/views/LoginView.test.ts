import { afterEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { RouterView } from 'vue-router'
import { setUnauthenticatedHandler } from '../lib/api/client'
import { installAuthGuard } from '../components/auth/guard'
import { button, fakeServer, flush, input, mount, type Reply } from '../components/auth/testing'
import LoginView from './LoginView.vue'

const Root = defineComponent({ render: () => h(RouterView) })
const Page = { render: () => h('p', 'page') }
const routes = [
  { path: '/', name: 'runs', component: Page },
  { path: '/login', name: 'login', component: LoginView },
  { path: '/envs', name: 'envs', component: Page },
]
const unauth = { status: 401, body: { message: 'sign in', code: 'unauthenticated' } }

afterEach(() => {
  vi.unstubAllGlobals()
  setUnauthenticatedHandler(null)
  document.body.innerHTML = ''
})

async function signIn(el: HTMLElement, name: string, password: string) {
  input(el, '#login-name', name)
  input(el, '#login-password', password)
  el.querySelector('form')!.dispatchEvent(new Event('submit'))
  await flush()
}

function loginPage(login: Reply | (() => Reply), me: Reply = unauth) {
  let signedIn = false
  fakeServer({
    'GET /api/me': () =>
      signedIn ? { status: 200, body: { username: 'rob', role: 'runner', auth: 'local' } } : me,
    'POST /api/login': () => {
      const r = typeof login === 'function' ? login() : login
      signedIn = r.status === 200
      return r
    },
  })
  return mount(Root, { path: '/envs', routes, setup: installAuthGuard })
}

describe('LoginView', () => {
  it('has labelled Name and Password fields and a Sign in button; returns to the path after', async () => {
    const { el, router } = await loginPage({
      status: 200,
      body: { username: 'rob', role: 'runner' },
    })
    expect(router.currentRoute.value.fullPath).toBe('/login?next=/envs')
    expect(el.querySelector('label[for="login-name"]')!.textContent).toBe('Name')
    expect(el.querySelector('label[for="login-password"]')!.textContent).toBe('Password')
    expect(el.querySelector<HTMLInputElement>('#login-password')!.type).toBe('password')
    expect(button(el, 'Sign in')).toBeDefined()
    expect(el.querySelector('[role=note]')).toBeNull()
    await signIn(el, 'rob', 'secret')
    expect(router.currentRoute.value.fullPath).toBe('/envs')
  })

  it('says the credentials are wrong, and when to retry after too many tries', async () => {
    let n = 0
    const { el, router } = await loginPage(() =>
      ++n === 1
        ? { status: 401, body: { message: 'Wrong name or password', code: 'invalid_credentials' } }
        : {
            status: 429,
            body: { message: 'Too many tries', code: 'rate_limited' },
            headers: { 'Retry-After': '30' },
          },
    )
    await signIn(el, 'rob', 'nope')
    expect(el.querySelector('[role=alert]')!.textContent).toBe('Wrong name or password.')
    expect(el.querySelector('#login-password')!.getAttribute('aria-invalid')).toBe('true')
    await signIn(el, 'rob', 'nope')
    expect(el.querySelector('[role=alert]')!.textContent).toBe(
      'Too many sign-in attempts. Try again in 30 seconds.',
    )
    expect(router.currentRoute.value.name).toBe('login')
  })

  it('asks for both fields before sending anything', async () => {
    const { el } = await loginPage({ status: 200, body: {} })
    await signIn(el, '', '')
    expect(el.querySelector('[role=alert]')!.textContent).toBe('Enter your name and password.')
  })

  it('tells how to create the first admin when the server has no accounts yet', async () => {
    const { el } = await loginPage(
      { status: 401, body: {} },
      {
        status: 401,
        body: { message: 'no accounts', code: 'unauthenticated', setup_required: true },
      },
    )
    expect(el.querySelector('[role=note]')!.textContent).toContain('users add NAME --role admin')
  })
})
