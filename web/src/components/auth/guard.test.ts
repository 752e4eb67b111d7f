import { afterEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { RouterView } from 'vue-router'
import { request, setUnauthenticatedHandler } from '../../lib/api/client'
import { installAuthGuard } from './guard'
import { fakeServer, flush, mount } from './testing'

const Root = defineComponent({ render: () => h(RouterView) })
const unauth = { status: 401, body: { message: 'sign in', code: 'unauthenticated' } }

afterEach(() => {
  vi.unstubAllGlobals()
  setUnauthenticatedHandler(null)
  document.body.innerHTML = ''
})

describe('installAuthGuard', () => {
  it('sends a visitor without a session to the login page with the way back', async () => {
    fakeServer({ 'GET /api/me': unauth })
    const { router } = await mount(Root, { path: '/envs?x=1', setup: installAuthGuard })
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/envs?x=1')
  })

  it('sends a signed-in user (or anyone under --auth none) from /login to the return path', async () => {
    fakeServer({
      'GET /api/me': { status: 200, body: { username: 'rob', role: 'runner', auth: 'local' } },
    })
    const { router } = await mount(Root, { path: '/login?next=/runs/3', setup: installAuthGuard })
    expect(router.currentRoute.value.fullPath).toBe('/runs/3')
  })

  it('a 401 from any later call leads to the login page, back to where the user was', async () => {
    let session = true
    fakeServer({
      'GET /api/me': () =>
        session
          ? { status: 200, body: { username: 'rob', role: 'runner', auth: 'local' } }
          : unauth,
      'GET /api/envs': unauth,
    })
    const { router } = await mount(Root, { path: '/envs', setup: installAuthGuard })
    expect(router.currentRoute.value.fullPath).toBe('/envs')
    session = false
    await expect(request('GET', '/api/envs')).rejects.toMatchObject({ status: 401 })
    await flush()
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/envs')
  })
})
