// End to end with accounts on (`--auth local`): users made with the real CLI
// on the test's database, before and while the server runs; login, queueing
// as a runner, a viewer without a Queue button, tokens, audit, logout.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BIN,
  launchBrowser,
  newPage,
  startServer,
  waitFor,
  type Problems,
  type Server,
} from './harness'

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')
const SHOTS = '/tmp/shots'
const PASSWORDS = { rob: 'runner-pass-1', vera: 'viewer-pass-1', ada: 'admin-pass-1' } as const
type Who = keyof typeof PASSWORDS

let dir: string
let server: Server
let browser: Browser

/** `testscheduler users add NAME --role ROLE --password-stdin --database DB`, the real CLI. */
async function addUser(name: Who, role: string): Promise<void> {
  const proc = spawn(
    BIN,
    ['users', 'add', name, '--role', role, '--password-stdin', '--database', join(dir, 'ts.db')],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  let out = ''
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()))
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()))
  proc.stdin.end(`${PASSWORDS[name]}\n`)
  const code = await new Promise<number | null>((ok) => proc.once('exit', ok))
  if (code !== 0) throw new Error(`users add ${name} exited ${code}: ${out}`)
  expect(out).not.toContain(PASSWORDS[name])
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ts-e2e-auth-'))
  mkdirSync(SHOTS, { recursive: true })
  await addUser('rob', 'runner')
  await addUser('ada', 'admin')
  server = await startServer(undefined, { dir, args: ['--auth', 'local'] })
  // One more while the server runs: the CLI works on the live database.
  await addUser('vera', 'viewer')
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

/** The answers a signed-out page gets by design: `/api/me` before login, a wrong password. */
function unexpected(problems: Problems): string[] {
  const expected = [/^401 GET \S+\/api\/me$/, /^401 POST \S+\/api\/login$/]
  const failed = problems.failed.filter((f) => !expected.some((re) => re.test(f)))
  // Chromium reports every 4xx answer on the console too.
  const errors = problems.errors.filter(
    (e) => !/Failed to load resource: the server responded with a status of 401/.test(e),
  )
  return [...failed, ...errors]
}

async function noSidewaysScroll(page: Page): Promise<void> {
  const [scroll, client] = await page.evaluate(() => [
    document.documentElement.scrollWidth,
    document.documentElement.clientWidth,
  ])
  expect(scroll, `${page.url()} scrolls sideways`).toBeLessThanOrEqual(client)
}

async function violations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE })
  const found = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: () => Promise<{ violations: unknown[] }> } })
      .axe
    return (await axe.run()).violations
  })) as { id: string; impact: string | null; nodes: { target: string[] }[] }[]
  return found
    .filter((v) => v.impact !== null)
    .map((v) => `${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
}

/** Both widths: a screenshot each, and no sideways scrolling at 390 px. */
async function shoot(page: Page, name: string): Promise<void> {
  await page.setViewportSize({ width: 1280, height: 860 })
  await page.screenshot({ path: `${SHOTS}/${name}-1280.png`, fullPage: true })
  await page.setViewportSize({ width: 390, height: 844 })
  await noSidewaysScroll(page)
  await page.screenshot({ path: `${SHOTS}/${name}-390.png`, fullPage: true })
  await page.setViewportSize({ width: 1280, height: 860 })
}

/** The login page with `next` set to `path`. */
const loginTo = (path: string) => (url: URL) =>
  url.pathname === '/login' && url.searchParams.get('next') === path

async function signIn(page: Page, who: Who, password: string = PASSWORDS[who]): Promise<void> {
  await page.getByLabel('Name', { exact: true }).fill(who)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

async function open(
  as?: Who,
): Promise<{ context: BrowserContext; page: Page; problems: Problems }> {
  const opened = await newPage(browser, { bypassCSP: true })
  if (as) {
    await opened.page.goto(`${server.url}/`)
    await opened.page.waitForURL(/\/login/)
    await signIn(opened.page, as)
    await opened.page.waitForURL(`${server.url}/`)
  }
  return opened
}

describe('accounts', () => {
  it('a runner signs in, comes back to where they were going, queues and signs out', async () => {
    const { context, page, problems } = await open()
    await page.goto(`${server.url}/envs`)
    await page.waitForURL(loginTo('/envs'))
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    // Nothing of the app's navigation is offered before signing in.
    expect(await page.getByRole('link', { name: 'Environments' }).count()).toBe(0)
    expect(await violations(page)).toEqual([])
    await shoot(page, 'login')

    await signIn(page, 'rob', 'not-the-password')
    await page.getByRole('alert').filter({ hasText: 'Wrong name or password.' }).waitFor()
    await shoot(page, 'login-wrong')

    await signIn(page, 'rob')
    await page.waitForURL(`${server.url}/envs`)
    await page.locator('[data-env-id="1"]').waitFor()
    const header = page.locator('header.topbar')
    await header.getByText('rob', { exact: true }).waitFor()
    await header.getByText('runner', { exact: true }).waitFor()
    for (const link of ['Runs', 'Environments', 'Tests', 'Tokens'])
      await header.getByRole('link', { name: link, exact: true }).waitFor()
    expect(await header.getByRole('link', { name: 'Audit' }).count()).toBe(0)
    // A runner reserves but neither disables nor enables.
    await page.locator('[data-env-id="1"]').getByRole('button', { name: 'Reserve' }).waitFor()
    expect(await page.getByRole('button', { name: 'Disable' }).count()).toBe(0)
    await shoot(page, 'envs-runner')

    await header.getByRole('link', { name: 'Runs', exact: true }).click()
    const name = page.getByLabel('Name', { exact: true })
    expect(await name.inputValue()).toBe('rob')
    expect(await name.getAttribute('readonly')).not.toBeNull()
    await page.getByLabel('Test path').fill('./tests/test_quick.py')
    await page.getByRole('button', { name: 'Queue run' }).click()
    const queued = page.getByRole('status').getByRole('link', { name: /run #\d+/i })
    await queued.waitFor()
    const row = page.locator('tbody tr').filter({ hasText: 'rob' }).first()
    await row.waitFor()
    await waitFor('the run to pass', async () => (await row.textContent())?.includes('succeeded'))
    await queued.click()
    await page.getByRole('heading', { name: /Run #\d+/ }).waitFor()
    await page.locator('[role=log] .line').first().waitFor()
    await page.goto(`${server.url}/`)
    await page.locator('tbody tr').first().waitFor()
    await shoot(page, 'runs-runner')

    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(/\/login$/)
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    // The session is gone: the app sends the visitor back to the login page.
    await page.goto(`${server.url}/runs/1`)
    await page.waitForURL(loginTo('/runs/1'))
    expect(unexpected(problems)).toEqual([])
    await context.close()
  })

  it('signing out in one tab takes the other to the login page when its /ws closes', async () => {
    const { context, page, problems } = await open('rob')
    await page.goto(`${server.url}/envs`)
    await page.locator('[data-env-id="1"]').waitFor()
    await page.locator('header.topbar').getByText('Live').waitFor()
    const other = await context.newPage()
    await other.goto(`${server.url}/`)
    await other.getByRole('button', { name: 'Sign out' }).click()
    await other.waitForURL(/\/login$/)
    // Nothing was asked of the first tab: the server closed its socket, /api/me said 401.
    await page.waitForURL(loginTo('/envs'))
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    expect(unexpected(problems)).toEqual([])
    await context.close()
  })

  it('a viewer sees no Queue button, nor Reserve or Disable', async () => {
    const { context, page, problems } = await open('vera')
    await page.getByRole('heading', { name: 'Queue a run' }).waitFor()
    await page.getByText('signed in as a viewer').waitFor()
    expect(await page.getByRole('button', { name: /Queue/ }).count()).toBe(0)
    await shoot(page, 'runs-viewer')
    await page.goto(`${server.url}/envs`)
    await page.locator('[data-env-id="1"]').waitFor()
    expect(await page.getByRole('button', { name: /Reserve|Disable|Enable/ }).count()).toBe(0)
    expect(unexpected(problems)).toEqual([])
    await context.close()
  })

  it('tokens: created once, usable as a Bearer token, revoked', async () => {
    const { context, page, problems } = await open('rob')
    await page.locator('header.topbar').getByRole('link', { name: 'Tokens' }).click()
    await page.getByRole('heading', { name: 'Tokens', exact: true }).waitFor()
    await page.getByText('No tokens yet.').waitFor()
    await page.getByLabel('Token name').fill('ci')
    await page.getByLabel('Expires in (days)').fill('30')
    await page.getByRole('button', { name: 'Create token' }).click()
    await page.getByText('it will not be shown again').waitFor()
    const token = await page.getByLabel('Token', { exact: true }).inputValue()
    expect(token.length).toBeGreaterThan(16)
    const me = await fetch(`${server.url}/api/me`, {
      headers: { Authorization: `Bearer ${token}` },
    })
    expect(await me.json()).toMatchObject({ username: 'rob', role: 'runner' })
    await page.locator('[data-token-id]').filter({ hasText: 'ci' }).waitFor()
    expect(await violations(page)).toEqual([])
    await shoot(page, 'tokens')

    await page.getByRole('button', { name: 'Done' }).click()
    await page.getByRole('button', { name: 'Revoke ci' }).click()
    await page.getByRole('button', { name: 'Yes, revoke' }).click()
    await page.getByText('No tokens yet.').waitFor()
    const after = await fetch(`${server.url}/api/me`, {
      headers: { Authorization: `Bearer ${token}` },
    })
    expect(after.status).toBe(401)

    // Signed in elsewhere too (another browser): Sign out everywhere ends both.
    const elsewhere = await open('rob')
    await page.getByRole('button', { name: 'Sign out everywhere' }).click()
    await page.waitForURL(/\/login$/)
    await elsewhere.page.waitForURL(loginTo('/'))
    expect(unexpected(problems)).toEqual([])
    expect(unexpected(elsewhere.problems)).toEqual([])
    await elsewhere.context.close()
    await context.close()
  })

  it('an admin reads the audit log, newest first, and may disable', async () => {
    const { context, page, problems } = await open('ada')
    await page.goto(`${server.url}/envs`)
    await page.locator('[data-env-id="1"]').getByRole('button', { name: 'Disable' }).waitFor()
    await page.locator('header.topbar').getByRole('link', { name: 'Audit' }).click()
    await page.getByRole('heading', { name: 'Audit' }).waitFor()
    await page.locator('tbody tr').first().waitFor()
    const times = await page
      .locator('tbody time')
      .evaluateAll((els) => els.map((e) => Date.parse(e.getAttribute('datetime') ?? '')))
    expect(times).toEqual([...times].sort((a, b) => b - a))
    // rob's wrong password of the first test is there.
    expect(await page.locator('tbody').textContent()).toContain('rob')
    await page.getByLabel('Show').selectOption('50')
    await page.locator('tbody tr').first().waitFor()
    expect(await violations(page)).toEqual([])
    await shoot(page, 'audit')
    expect(unexpected(problems)).toEqual([])
    await context.close()
  })

  it('a server without accounts yet shows how to create the first admin (dark)', async () => {
    const fresh = await startServer(undefined, { args: ['--auth', 'local'] })
    try {
      const { context, page, problems } = await newPage(browser, {
        bypassCSP: true,
        colorScheme: 'dark',
      })
      await page.goto(`${fresh.url}/`)
      await page.waitForURL(loginTo('/'))
      await page.getByRole('note').getByText('No accounts exist yet.').waitFor()
      expect(await page.getByRole('note').textContent()).toContain('users add NAME --role admin')
      expect(await violations(page)).toEqual([])
      await shoot(page, 'login-first-run-dark')
      expect(unexpected(problems)).toEqual([])
      await context.close()
    } finally {
      await fresh.stop()
    }
  })
})
