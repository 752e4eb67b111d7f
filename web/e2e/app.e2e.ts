// End to end: the real binary, real pytest runs, headless Chromium.
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  launchBrowser,
  newPage,
  SHOTS,
  startServer,
  waitFor,
  type Problems,
  type Server,
} from './harness'

interface Run {
  id: number
  status: string
}
interface Lines {
  total: number
  lines: string[]
}

let server: Server
let browser: Browser
let nextEnv = 10

beforeAll(async () => {
  server = await startServer()
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

function queue(path: string, username = 'e2e-user'): Promise<Run> {
  return api<Run>(server, '/api/testruns', { username, env_id: nextEnv++, path })
}

async function runStatus(id: number): Promise<string> {
  return (await api<Run>(server, `/api/testruns/${id}`)).status
}

/** Line number → text of the rows currently rendered in the log. */
async function renderedRows(page: Page): Promise<[number, string][]> {
  return page.$$eval('[role=log] .line', (rows) =>
    rows.map((r) => [
      Number((r as HTMLElement).dataset.line),
      (r.querySelector('.txt') as HTMLElement).innerText,
    ]),
  )
}

function clean(problems: Problems) {
  expect(problems).toEqual({ errors: [], failed: [] })
}

describe('testscheduler web app', () => {
  it('queues a run from the form, lists it live, shows coloured live lines, cancels it', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Name').fill('alice')
    await page.getByLabel('Environment').selectOption('5')
    await page.getByLabel('Test path').fill('./tests/test_slow.py')
    await page.getByRole('button', { name: 'Queue run' }).click()
    const row = page.locator('tbody tr', { hasText: './tests/test_slow.py' }).first()
    await row.waitFor()
    expect(await row.innerText()).toContain('alice')
    // The name is remembered.
    expect(await page.evaluate(() => localStorage.getItem('testscheduler.username'))).toBe('alice')

    await row.getByRole('link').first().click()
    await page.waitForURL(/\/runs\/\d+$/)
    const id = Number(new URL(page.url()).pathname.split('/').pop())
    const red = page.locator('[role=log] span[style*="color"]', { hasText: 'red' }).first()
    await red.waitFor({ timeout: 30_000 })
    expect(await red.getAttribute('style')).toMatch(/color:\s*rgb/)
    expect(await page.locator('[role=log]').innerText()).not.toContain('\u001b')
    expect(await page.title()).toMatch(/running/)
    const icon = () => page.locator('link[rel="icon"]').getAttribute('href')
    const runningIcon = await icon()
    expect(runningIcon).toMatch(/^data:image\/svg\+xml,/)
    await page.screenshot({ path: `${SHOTS}/e2e-live.png` })

    await page.getByRole('button', { name: 'Cancel' }).click()
    await page.locator('.status-text', { hasText: 'cancelled' }).waitFor()
    expect(await runStatus(id)).toBe('cancelled')
    expect(await page.title()).toMatch(/cancelled/)
    expect(await icon()).not.toBe(runningIcon)
    expect(await page.getByRole('button', { name: 'Cancel' }).count()).toBe(0)
    const download = page.getByRole('link', { name: 'Download' })
    expect(await download.getAttribute('href')).toBe(`/api/testruns/${id}/log.txt`)
    clean(problems)
    await context.close()
  })

  it('shows a server validation error beside its field, with aria-invalid', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Name').fill('ab')
    await page.getByLabel('Test path').fill('./tests/test_quick.py')
    const [res] = await Promise.all([
      page.waitForResponse(
        (r) => r.url().endsWith('/api/testruns') && r.request().method() === 'POST',
      ),
      page.getByRole('button', { name: 'Queue run' }).click(),
    ])
    expect(res.status()).toBe(400)
    const name = page.getByLabel('Name')
    await page.locator('#q-name-err').waitFor()
    expect(await name.getAttribute('aria-invalid')).toBe('true')
    expect(await page.locator('#q-name-err').innerText()).not.toBe('')
    expect(await page.getByLabel('Test path').getAttribute('aria-invalid')).toBeNull()
    await page.screenshot({ path: `${SHOTS}/e2e-invalid.png` })
    // The failed POST is the point of this test; nothing else may fail.
    expect(problems.errors.filter((e) => !e.includes('400'))).toEqual([])
    expect(problems.failed.filter((f) => !f.startsWith('400 POST'))).toEqual([])
    await context.close()
  })

  it('shows a busy environment at Environment when not waiting', async () => {
    const slow = await queue('./tests/test_slow.py')
    const env = nextEnv - 1
    const { page, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Name').fill('bob-busy')
    await page.getByLabel('Environment').selectOption(String(env))
    // Without waiting, a busy environment refuses the run (409), as the original app did.
    await page.getByLabel('Wait if busy').uncheck()
    await page.getByLabel('Test path').fill('./tests/test_quick.py')
    await page.getByRole('button', { name: 'Queue run' }).click()
    const err = page.locator('#q-env-err')
    await err.waitFor()
    expect((await err.innerText()).toLowerCase()).toContain('busy')
    expect(await page.getByLabel('Environment').getAttribute('aria-invalid')).toBe('true')
    await api(server, `/api/testruns/${slow.id}/cancel`, {})
    await context.close()
  })

  it('reloaded mid-run, the log completes without duplicates or gaps', async () => {
    const run = await queue('./tests/test_slow.py')
    const { page, problems, context } = await newPage(browser, {
      viewport: { width: 1280, height: 1800 },
    })
    await page.goto(`${server.url}/runs/${run.id}`)
    await page.locator('[role=log] .line', { hasText: 'line 3' }).first().waitFor()
    await page.reload()
    await page.locator('[role=log] .line', { hasText: 'line 5' }).first().waitFor()
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded', 60_000)
    await page.locator('.status-text', { hasText: 'succeeded' }).waitFor()
    const expected = await api<Lines>(server, `/api/testruns/${run.id}/lines?from=0&limit=1000`)
    await waitFor('all lines', async () => (await renderedRows(page)).length >= expected.total)
    const rows = await renderedRows(page)
    expect(rows.map(([n]) => n)).toEqual(expected.lines.map((_, i) => i + 1))
    // eslint-disable-next-line no-control-regex
    const plain = expected.lines.map((l) => l.replace(/\u001b\[[0-9;]*m/g, ''))
    expect(rows.map(([, t]) => t)).toEqual(plain)
    expect(rows.filter(([, t]) => /red line \d+/.test(t))).toHaveLength(40)
    clean(problems)
    await context.close()
  })

  it('shows the unfinished line last, then replaces it by the full line', async () => {
    const run = await queue('./tests/test_wait.py')
    const { page, problems, context } = await newPage(browser, {
      viewport: { width: 1280, height: 1400 },
    })
    await page.goto(`${server.url}/runs/${run.id}`)
    const partial = page.locator('[role=log] .line.partial')
    // A follower gets a partial line only if it is printed after it started following.
    const waiting = page.locator('[role=log] .line.partial', {
      hasText: 'test_wait.py::test_2_wait',
    })
    await waiting.waitFor({ timeout: 30_000 })
    await page.locator('.status-text', { hasText: 'succeeded' }).waitFor({ timeout: 30_000 })
    await page.locator('[role=log] .line', { hasText: 'PASSED' }).first().waitFor()
    expect(await partial.count()).toBe(0)
    const expected = await api<Lines>(server, `/api/testruns/${run.id}/lines?from=0&limit=1000`)
    const rows = await renderedRows(page)
    expect(rows.map(([n]) => n)).toEqual(expected.lines.map((_, i) => i + 1))
    expect(rows.filter(([, t]) => t.includes('test_wait.py::test_2_wait'))).toHaveLength(1)
    clean(problems)
    await context.close()
  })

  it('opens a big log at its tail, with a few DOM rows, and pages to its top', async () => {
    const run = await queue('./tests/test_big.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded', 60_000)
    const { total } = await api<Lines>(server, `/api/testruns/${run.id}/lines?from=0&limit=1`)
    expect(total).toBeGreaterThan(200_000)
    const { page, problems, context } = await newPage(browser)
    const started = Date.now()
    await page.goto(`${server.url}/runs/${run.id}`)
    await page.locator(`[role=log] .line[data-line="${total}"] .txt`).waitFor()
    const opened = Date.now() - started
    expect(opened).toBeLessThan(5000)
    expect(await page.locator('[role=log] .line').count()).toBeLessThan(200)
    const last = page.locator('[role=log] .line', { hasText: '199999 y' })
    await last.locator('span[style*="color"]', { hasText: '199999' }).waitFor()
    // Scrolling to the top fetches that window; the middle is never downloaded.
    await page.locator('[role=log]').evaluate((el) => (el.scrollTop = 0))
    await page
      .locator('[role=log] .line[data-line="1"] .txt', { hasText: 'test session starts' })
      .waitFor()
    await page.locator('[role=log]').evaluate((el) => (el.scrollTop = el.scrollHeight / 2))
    await waitFor('middle rows', async () => {
      const rows = await renderedRows(page)
      return rows.length > 0 && rows.every(([, t]) => /^\d{6} y/.test(t))
    })
    await page.getByRole('button', { name: /Jump to end/ }).click()
    await page.locator(`[role=log] .line[data-line="${total}"]`).waitFor()
    clean(problems)
    await context.close()
  })

  it('shows a log longer than the browser can lay out through a moving window', async () => {
    const run = await queue('./tests/test_big.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded', 60_000)
    const { total } = await api<Lines>(server, `/api/testruns/${run.id}/lines?from=0&limit=1`)
    const { page, problems, context } = await newPage(browser)
    // A window of 50,000 rows stands in for the browser's ~1.67M-row limit.
    await context.addInitScript(() => localStorage.setItem('testscheduler.maxLogRows', '50000'))
    await page.goto(`${server.url}/runs/${run.id}`)
    await page.locator(`[role=log] .line[data-line="${total}"] .txt`).waitFor()
    const log = page.locator('[role=log]')
    expect(await log.evaluate((el) => el.scrollHeight)).toBeLessThanOrEqual(50_000 * 20 + 100)

    /** Rendered rows are consecutive and each shows its own line (n - 1 - header). */
    async function consistent() {
      const rows = (await renderedRows(page)).filter(([, t]) => /^\d{6} y/.test(t))
      if (rows.length === 0) return false
      const offset = rows[0]![0] - 1 - Number(rows[0]![1].slice(0, 6))
      return rows.every(([n, t]) => Number(t.slice(0, 6)) === n - 1 - offset)
    }
    // The tail's rows may still be arriving when its last line shows: wait for them.
    await waitFor('rows loaded at the tail', consistent)
    await waitFor('the top of the log', async () => {
      await log.evaluate((el) => (el.scrollTop = 0))
      await page.waitForTimeout(50)
      return (await page.locator('[role=log] .line[data-line="1"]').count()) > 0
    })
    await page
      .locator('[role=log] .line[data-line="1"] .txt', { hasText: 'session starts' })
      .waitFor()
    await page.locator('[role=log] .line[data-line="30"] .txt', { hasText: /^\d{6} y/ }).waitFor()
    expect(await consistent()).toBe(true)

    await page.goto(`${server.url}/runs/${run.id}#L120000`)
    const marked = page.locator('[role=log] .line.marked')
    await marked.waitFor()
    expect(await marked.getAttribute('data-line')).toBe('120000')
    await waitFor('rows loaded', consistent)
    await waitFor('the end, scrolling down', async () => {
      await log.evaluate((el) => (el.scrollTop = el.scrollHeight))
      await page.waitForTimeout(50)
      return (await page.locator(`[role=log] .line[data-line="${total}"]`).count()) > 0
    })
    await waitFor('rows loaded', consistent)
    await log.evaluate((el) => (el.scrollTop = el.scrollHeight / 2))
    await page.getByRole('button', { name: /Jump to end/ }).click()
    await page.locator(`[role=log] .line[data-line="${total}"]`).waitFor()
    clean(problems)
    await context.close()
  })

  it('#L3 scrolls line 3 into view and marks it; clicking a number sets the hash', async () => {
    const run = await queue('./tests/test_quick.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded')
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/runs/${run.id}#L3`)
    const marked = page.locator('[role=log] .line.marked')
    await marked.waitFor()
    expect(await marked.getAttribute('data-line')).toBe('3')
    expect(await marked.isVisible()).toBe(true)
    await page.locator('[role=log] .line[data-line="5"] .ln').click()
    await page.waitForURL(/#L5$/)
    expect(await marked.getAttribute('data-line')).toBe('5')
    clean(problems)
    await context.close()
  })

  it('drops title and DCS sequences and renders OSC 8 links safely', async () => {
    const run = await queue('./tests/test_escapes.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded')
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/runs/${run.id}`)
    const log = page.locator('[role=log]')
    await log.locator('.line', { hasText: 'refused label' }).waitFor()
    const text = await log.innerText()
    expect(text).toContain('beforeafter')
    expect(text).not.toMatch(/\]0;|P\+q|544e|a window title/)
    expect(text).toContain('see the docs here')
    expect(text).toContain('and refused label too')
    const link = log.getByRole('link', { name: 'the docs' })
    expect(await link.getAttribute('href')).toBe('https://example.com/docs')
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer')
    expect(await link.getAttribute('target')).toBe('_blank')
    expect(await log.locator('a[href^="javascript"]').count()).toBe(0)
    expect(await log.getByRole('link', { name: 'refused label' }).count()).toBe(0)
    await log.screenshot({ path: `${SHOTS}/e2e-escapes.png` })
    clean(problems)
    await context.close()
  })

  it('searches the log and jumps to a match', async () => {
    const run = await queue('./tests/test_fail.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'failed')
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/runs/${run.id}`)
    await page.locator('[role=log] .line').first().waitFor()
    await page.getByRole('searchbox', { name: 'Search text' }).fill('about to fail')
    await page.getByRole('button', { name: 'Search', exact: true }).click()
    const hit = page.locator('.hit').first()
    await hit.waitFor()
    await hit.click()
    await page.waitForURL(/#L\d+$/)
    const marked = page.locator('[role=log] .line.marked')
    expect(await marked.innerText()).toContain('about to fail')
    expect(await marked.locator('mark').innerText()).toBe('about to fail')
    await page.screenshot({ path: `${SHOTS}/e2e-search.png` })
    clean(problems)
    await context.close()
  })

  it('keeps filters and sorting in the URL', async () => {
    await queue('./tests/test_quick.py', 'filter-me')
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/?user=filter-me`)
    await page.locator('tbody tr').first().waitFor()
    const users = await page.$$eval('tbody .c-user', (c) => c.map((x) => x.textContent?.trim()))
    expect(new Set(users)).toEqual(new Set(['filter-me']))
    await page.getByRole('button', { name: /^Env/ }).click()
    await page.waitForURL(/sort=/)
    expect(new URL(page.url()).searchParams.get('user')).toBe('filter-me')
    await page.getByLabel('Status', { exact: true }).selectOption('succeeded')
    await page.waitForURL(/status=succeeded/)
    clean(problems)
    await context.close()
  })

  it('sends the old hash links to their new addresses', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/#/tasks/1`)
    await page.waitForURL(/\/runs\/1$/)
    await page.goto(`${server.url}/#/tasks`)
    await page.waitForURL((u) => u.pathname === '/' && u.hash === '')
    clean(problems)
    await context.close()
  })

  it('fits a phone: no sideways scroll on the list or on a run', async () => {
    const run = await queue('./tests/test_quick.py')
    await waitFor('run end', async () => (await runStatus(run.id)) === 'succeeded')
    const { page, problems, context } = await newPage(browser, {
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    })
    await page.goto(`${server.url}/`)
    await page.locator('tbody tr').first().waitFor()
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    await page.goto(`${server.url}/runs/${run.id}`)
    await page.locator('[role=log] .line').first().waitFor()
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    await page.screenshot({ path: `${SHOTS}/e2e-phone-run.png` })
    clean(problems)
    await context.close()
  })
})
