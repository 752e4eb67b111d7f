import { afterEach, describe, expect, it, vi } from 'vitest'
import { useMeStore } from '../stores/me'
import { button, fakeServer, flush, input, mount } from '../components/auth/testing'
import TokensView from './TokensView.vue'

const CI = {
  id: 1,
  name: 'ci',
  created_at: '2026-11-01T10:00:00Z',
  expires_at: '2027-01-30T10:00:00Z',
  last_used: '2026-12-01T09:00:00Z',
  expired: false,
}
const signedIn = () => {
  useMeStore().me = { username: 'rob', role: 'runner', auth: 'local' }
}

afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('TokensView', () => {
  it('lists own tokens with created, expires and last used', async () => {
    fakeServer({
      'GET /api/tokens': {
        status: 200,
        body: [CI, { ...CI, id: 2, name: 'laptop', last_used: null }],
      },
    })
    const { el } = await mount(TokensView, { setup: signedIn })
    const rows = [...el.querySelectorAll('[data-token-id]')]
    expect(rows.map((r) => r.querySelector('.tname')!.textContent)).toEqual(['ci', 'laptop'])
    expect(rows[0]!.textContent).toMatch(/Created.*Expires.*Last used/)
    expect(rows[1]!.textContent).toContain('never')
  })

  it('creates a token and shows it once with a copy button and a warning', async () => {
    let list: unknown[] = []
    const calls = fakeServer({
      'GET /api/tokens': () => ({ status: 200, body: list }),
      'POST /api/tokens': () => {
        list = [{ ...CI, id: 5, name: 'deploy' }]
        return {
          status: 201,
          body: { id: 5, name: 'deploy', token: 'tsk_secret', expires_at: CI.expires_at },
        }
      },
    })
    const writeText = vi.fn().mockResolvedValue(undefined)
    vi.stubGlobal('navigator', { ...navigator, clipboard: { writeText } })
    const { el } = await mount(TokensView, { setup: signedIn })
    expect(el.textContent).toContain('No tokens yet.')
    input(el, '#t-name', 'deploy')
    input(el, '#t-days', '30')
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({
      name: 'deploy',
      expires_in_days: 30,
    })
    const once = el.querySelector('[data-testid=new-token]')!
    expect(once.textContent).toContain('will not be shown again')
    expect(el.querySelector<HTMLInputElement>('#t-value')!.value).toBe('tsk_secret')
    button(el, 'Copy')!.click()
    await flush()
    expect(writeText).toHaveBeenCalledWith('tsk_secret')
    expect(once.textContent).toContain('Copied')
    expect(el.querySelectorAll('[data-token-id]')).toHaveLength(1)
    button(el, 'Done')!.click()
    await flush()
    expect(el.querySelector('#t-value')).toBeNull()
  })

  it('names the field when the name is missing', async () => {
    const calls = fakeServer({ 'GET /api/tokens': { status: 200, body: [] } })
    const { el } = await mount(TokensView, { setup: signedIn })
    el.querySelector('form')!.dispatchEvent(new Event('submit'))
    await flush()
    expect(el.querySelector('#t-name')!.getAttribute('aria-invalid')).toBe('true')
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(0)
  })

  it('revokes only after confirmation', async () => {
    const calls = fakeServer({
      'GET /api/tokens': { status: 200, body: [CI] },
      'DELETE /api/tokens/1': { status: 204 },
    })
    const { el } = await mount(TokensView, { setup: signedIn })
    el.querySelector<HTMLButtonElement>('[aria-label="Revoke ci"]')!.click()
    await flush()
    expect(calls.filter((c) => c.method === 'DELETE')).toHaveLength(0)
    button(el, 'Keep')!.click()
    await flush()
    el.querySelector<HTMLButtonElement>('[aria-label="Revoke ci"]')!.click()
    await flush()
    button(el, 'Yes, revoke')!.click()
    await flush()
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual(['/api/tokens/1'])
    expect(el.querySelectorAll('[data-token-id]')).toHaveLength(0)
  })
})
