import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { Me } from '../lib/api/auth'
import { request, setUnauthenticatedHandler } from '../lib/api/client'
import { fakeServer } from '../components/auth/testing'
import { allowed, safeReturnPath, useMeStore, type Action } from './me'

const none: Me = { username: null, role: 'admin', auth: 'none' }
const viewer: Me = { username: 'vera', role: 'viewer', auth: 'local' }
const runner: Me = { username: 'rob', role: 'runner', auth: 'local' }
const admin: Me = { username: 'ada', role: 'admin', auth: 'proxy' }

beforeEach(() => setActivePinia(createPinia()))
afterEach(() => {
  vi.unstubAllGlobals()
  setUnauthenticatedHandler(null)
})

describe('allowed', () => {
  // [action, owner, none, viewer, runner, admin]
  const table: [Action, string | null, boolean, boolean, boolean, boolean][] = [
    ['queue', null, true, false, true, true],
    ['reserve', null, true, false, true, true],
    ['cancel', 'rob', true, false, true, true],
    ['cancel', 'someone', true, false, false, true],
    ['cancel', null, true, false, false, true],
    ['rerun', 'rob', true, false, true, true],
    ['rerun', 'someone', true, false, false, true],
    ['release', 'rob', true, false, true, true],
    ['release', 'someone', true, false, false, true],
    ['disable', null, true, false, false, true],
    ['enable', null, true, false, false, true],
    ['manageUsers', null, true, false, false, true],
    ['audit', null, true, false, false, true],
    ['tokens', null, false, true, true, true],
  ]
  it.each(table)('%s of %s: none %s, viewer %s, runner %s, admin %s', (a, owner, n, v, r, ad) => {
    expect([none, viewer, runner, admin].map((me) => allowed(me, a, owner))).toEqual([n, v, r, ad])
  })

  it('allows nothing to nobody', () => {
    expect(allowed(null, 'tokens')).toBe(false)
    expect(allowed({ username: null, role: 'runner', auth: 'local' }, 'queue')).toBe(false)
  })
})

describe('safeReturnPath', () => {
  it('keeps app paths and refuses other sites and the login page', () => {
    expect(safeReturnPath('/runs/4?x=1#L3')).toBe('/runs/4?x=1#L3')
    expect(safeReturnPath(['/envs'])).toBe('/envs')
    for (const bad of ['//evil.example/', 'https://evil.example/', '/login', '/login?next=/', 3])
      expect(safeReturnPath(bad)).toBe('/')
  })
})

describe('useMeStore', () => {
  it('under --auth none is signed in as nobody in particular and may do everything', async () => {
    fakeServer({ 'GET /api/me': { status: 200, body: none } })
    const me = useMeStore()
    await me.load()
    expect([me.signedIn, me.accounts, me.name, me.mode]).toEqual([true, false, null, 'none'])
    expect(me.can('disable') && me.can('cancel', 'anyone')).toBe(true)
  })

  it('a 401 means accounts are on and nobody signed in; the first-run signal is kept', async () => {
    fakeServer({
      'GET /api/me': {
        status: 401,
        body: {
          message: 'Sign in first. No account exists yet: create the first admin with …',
          code: 'unauthenticated',
        },
      },
    })
    const handler = vi.fn()
    setUnauthenticatedHandler(handler)
    const me = useMeStore()
    await me.load()
    expect([me.signedIn, me.accounts, me.unauthenticated, me.firstRun]).toEqual([
      false,
      true,
      true,
      true,
    ])
    expect(me.can('tokens')).toBe(false)
    // /api/me's own 401 is the answer, not a lost session.
    expect(handler).not.toHaveBeenCalled()
  })

  it('a server from before accounts (404) is taken as --auth none', async () => {
    fakeServer({})
    const me = useMeStore()
    await me.load()
    expect([me.signedIn, me.mode]).toEqual([true, 'none'])
  })

  it('while the server cannot be asked, leaves the decision to it', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))
    const me = useMeStore()
    await me.load()
    expect(me.loadError).toContain('Failed to fetch')
    expect(me.can('queue')).toBe(true)
  })

  it('logs in, then asks /api/me for the mode; logs out', async () => {
    let session = false
    const calls = fakeServer({
      'GET /api/me': () =>
        session
          ? { status: 200, body: runner }
          : { status: 401, body: { message: 'no', code: 'unauthenticated' } },
      'POST /api/login': () => {
        session = true
        return { status: 200, body: { username: 'rob', role: 'runner' } }
      },
      'POST /api/logout': () => {
        session = false
        return { status: 204 }
      },
    })
    const me = useMeStore()
    await me.load()
    await me.login('rob', 'pw')
    expect(calls.find((c) => c.url === '/api/login')?.body).toEqual({
      username: 'rob',
      password: 'pw',
    })
    expect([me.signedIn, me.name, me.role, me.mode]).toEqual([true, 'rob', 'runner', 'local'])
    expect(me.can('cancel', 'rob')).toBe(true)
    expect(me.can('cancel', 'bob')).toBe(false)
    await me.logout()
    expect([me.signedIn, me.unauthenticated]).toEqual([false, true])
  })

  it('rechecks once at a time with accounts on; a 401 then signs out', async () => {
    let session = true
    const calls = fakeServer({
      'GET /api/me': () =>
        session
          ? { status: 200, body: runner }
          : { status: 401, body: { message: 'ended', code: 'unauthenticated' } },
    })
    const me = useMeStore()
    await me.load()
    session = false
    await Promise.all([me.recheck(), me.recheck()])
    expect(calls.filter((c) => c.url === '/api/me')).toHaveLength(2)
    expect([me.signedIn, me.unauthenticated]).toEqual([false, true])
  })

  it('never rechecks under --auth none', async () => {
    const calls = fakeServer({ 'GET /api/me': { status: 200, body: none } })
    const me = useMeStore()
    await me.load()
    await me.recheck()
    expect(calls.filter((c) => c.url === '/api/me')).toHaveLength(1)
  })
})

describe('request', () => {
  it('reports a 401 to the handler unless the caller expects it, and reads Retry-After', async () => {
    fakeServer({
      'GET /api/envs': { status: 401, body: { message: 'gone', code: 'unauthenticated' } },
      'POST /api/login': {
        status: 429,
        body: { message: 'slow down', code: 'rate_limited' },
        headers: { 'Retry-After': '42' },
      },
    })
    const handler = vi.fn()
    setUnauthenticatedHandler(handler)
    await expect(request('GET', '/api/envs')).rejects.toMatchObject({ status: 401 })
    expect(handler).toHaveBeenCalledTimes(1)
    await expect(request('POST', '/api/login', {}, { quiet401: true })).rejects.toMatchObject({
      status: 429,
      retryAfter: 42,
    })
    expect(handler).toHaveBeenCalledTimes(1)
  })
})
