import { afterEach, describe, expect, it, vi } from 'vitest'
import { useMeStore } from '../stores/me'
import { fakeServer, flush, input, mount } from '../components/auth/testing'
import AuditView from './AuditView.vue'

const entry = (at: string, action: string) => ({
  at,
  actor: 'ada',
  action,
  target: 'run 4',
  detail: '',
})

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('AuditView', () => {
  it('shows entries newest first and refetches with the chosen limit', async () => {
    const calls = fakeServer({
      'GET /api/audit?limit=100': {
        status: 200,
        body: [
          entry('2026-12-01T09:00:00Z', 'run.cancel'),
          entry('2026-12-01T11:00:00Z', 'login.failed'),
        ],
      },
      'GET /api/audit?limit=500': { status: 200, body: [] },
    })
    const { el } = await mount(AuditView, {
      setup: () => {
        useMeStore().me = { username: 'ada', role: 'admin', auth: 'local' }
      },
    })
    const actions = [...el.querySelectorAll('tbody .c-action')].map((c) => c.textContent)
    expect(actions).toEqual(['login.failed', 'run.cancel'])
    input(el, '#audit-limit', '500')
    await flush()
    expect(calls.map((c) => c.url)).toEqual(['/api/audit?limit=100', '/api/audit?limit=500'])
    expect(el.textContent).toContain('Nothing recorded yet.')
  })

  it('tells a non-admin it is for admins, without asking the server', async () => {
    const calls = fakeServer({})
    const { el } = await mount(AuditView, {
      setup: () => {
        useMeStore().me = { username: 'rob', role: 'runner', auth: 'local' }
      },
    })
    expect(el.querySelector('[role=alert]')!.textContent).toContain('Only admins')
    expect(calls).toHaveLength(0)
  })
})
