// The buttons each role sees: the queue form, /envs and the run page's Cancel.
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Me } from '../../lib/api/auth'
import type { EnvView } from '../../lib/api/envs'
import { useMeStore } from '../../stores/me'
import QueueForm from '../runs/QueueForm.vue'
import EnvsView from '../../views/EnvsView.vue'
import { button, fakeServer, flush, input, mount } from './testing'

function env(id: number, over: Partial<EnvView> = {}): EnvView {
  return {
    id,
    name: `staging-${id}`,
    labels: [],
    description: '',
    state: 'free',
    run_id: null,
    holder: null,
    queue_length: 0,
    disabled_reason: null,
    ...over,
  }
}

const reservedBy = (id: number, username: string) =>
  env(id, {
    state: 'reserved',
    holder: {
      kind: 'reservation',
      reservation_id: 40 + id,
      username,
      since: '2026-12-01T10:00:00Z',
      until: '2026-12-01T12:00:00Z',
      note: null,
    },
  })

const ENVS = [env(1), env(2, { state: 'disabled' }), reservedBy(3, 'rob'), reservedBy(4, 'carol')]
const as = (me: Me) => () => {
  useMeStore().me = me
}
const viewer = as({ username: 'vera', role: 'viewer', auth: 'local' })
const runner = as({ username: 'rob', role: 'runner', auth: 'local' })
const admin = as({ username: 'ada', role: 'admin', auth: 'local' })

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
  localStorage.clear()
})

function server() {
  return fakeServer({
    'GET /api/envs': { status: 200, body: ENVS },
    'GET /api/tests': { status: 200, body: ['./tests/'] },
    'POST /api/testruns': { status: 201, body: { id: 9, status: 'running' } },
  })
}

const names = (root: Element) =>
  [...root.querySelectorAll('.actions button')].map((b) => b.textContent!.trim())
const cardOf = (el: HTMLElement, id: number) => el.querySelector(`[data-env-id="${id}"]`)!

describe('the queue form with accounts on', () => {
  it('shows the signed-in name read-only and sends it', async () => {
    localStorage.setItem('testscheduler.username', 'typed-before')
    const calls = server()
    const { el } = await mount(QueueForm, { setup: runner })
    const name = el.querySelector<HTMLInputElement>('#q-name')!
    expect([name.value, name.readOnly]).toEqual(['rob', true])
    expect(el.querySelector('label[for="q-name"]')!.textContent).toBe('Name')
    input(el, '#q-path', './tests/')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(calls.find((c) => c.method === 'POST')?.body).toMatchObject({ username: 'rob' })
  })

  it('has no Queue button for a viewer, and says why', async () => {
    server()
    const { el } = await mount(QueueForm, { setup: viewer })
    expect(button(el, 'Queue run')).toBeUndefined()
    expect(el.querySelector('[data-testid=viewer-note]')!.textContent).toContain('viewer')
  })

  it('under --auth none keeps the editable name and the button', async () => {
    server()
    const { el } = await mount(QueueForm, {
      setup: as({ username: null, role: 'admin', auth: 'none' }),
    })
    expect(el.querySelector<HTMLInputElement>('#q-name')!.readOnly).toBe(false)
    expect(button(el, 'Queue run')).toBeDefined()
  })
})

describe('/envs buttons by role', () => {
  it('a viewer sees none', async () => {
    server()
    const { el } = await mount(EnvsView, { setup: viewer })
    for (const id of [1, 2, 3, 4]) expect(names(cardOf(el, id))).toEqual([])
  })

  it('a runner reserves and releases their own, but neither disables nor enables', async () => {
    server()
    const { el } = await mount(EnvsView, { setup: runner })
    expect(names(cardOf(el, 1))).toEqual(['Reserve'])
    expect(names(cardOf(el, 2))).toEqual(['Reserve'])
    expect(names(cardOf(el, 3))).toEqual(['Release', 'Extend 1 h'])
    expect(names(cardOf(el, 4))).toEqual([])
  })

  it('an admin sees everything', async () => {
    server()
    const { el } = await mount(EnvsView, { setup: admin })
    expect(names(cardOf(el, 1))).toEqual(['Reserve', 'Disable'])
    expect(names(cardOf(el, 2))).toEqual(['Reserve', 'Enable'])
    expect(names(cardOf(el, 4))).toEqual(['Release', 'Extend 1 h', 'Disable'])
  })

  it('the reserve form shows the signed-in name read-only', async () => {
    server()
    const { el } = await mount(EnvsView, { setup: runner })
    button(cardOf(el, 1) as HTMLElement, 'Reserve')!.click()
    await flush()
    const name = el.querySelector<HTMLInputElement>('#res-1-name')!
    expect([name.value, name.readOnly]).toEqual(['rob', true])
  })
})
