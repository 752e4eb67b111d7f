// End to end, results and verdicts: the real binary runs real pytest; the
// run page's tests table, its log links, Re-run failed, the runs list's
// summaries and the verdicts on /tests, in headless Chromium.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  launchBrowser,
  newPage,
  startServer,
  waitFor,
  type Problems,
  type Server,
} from './harness'

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')
const SHOTS = process.env.SHOTS_DIR ?? '/tmp/shots'

const FILES: Record<string, string> = {
  'tests/test_mix.py': `
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("the fixture broke")

def test_ok_one():
    print("one is fine")

def test_bad():
    print("about to fail")
    assert 1 == 2, "one is not two"

def test_ok_two():
    pass

def test_err(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
`,
  // Its second test waits for the e2e test to drop a file: a run caught mid-way.
  'tests/test_gate.py': `
import pathlib, time

def test_first():
    pass

def test_gated():
    gate = pathlib.Path(__file__).parent.parent / "gate"
    while not gate.exists():
        time.sleep(0.05)
`,
  // 20,000 tests, one in a thousand failing: the table must stay quick.
  'tests/test_many.py': `
import pytest

@pytest.mark.parametrize("i", range(20000))
def test_many(i):
    assert i % 1000 != 999
`,
  // Passes only on environment 1: a history that makes it "environment suspect" on 2.
  'tests/test_envdep.py': `
import os

def test_needs_env_1():
    assert os.environ["TESTSCHEDULER_ENV_ID"] == "1"
`,
}

interface Run {
  id: number
  status: string
  select: string[] | null
  rerun_of: number | null
}
interface Results {
  tests: { nodeid: string; outcome: string; line: number | null }[]
}
interface Lines {
  lines: string[]
}

let server: Server
let browser: Browser
let mixId = 0

const FINAL = ['succeeded', 'failed', 'cancelled', 'timeout', 'unknown']

async function finished(id: number, timeoutMs = 60_000): Promise<Run> {
  return waitFor(
    `run ${id} to end`,
    async () => {
      const run = await api<Run>(server, `/api/testruns/${id}`)
      return FINAL.includes(run.status) ? run : null
    },
    timeoutMs,
  )
}

async function runOn(path: string, env: number, timeoutMs?: number): Promise<Run> {
  const run = await api<Run>(server, '/api/testruns', {
    username: 'e2e',
    env_id: env,
    path,
    wait: true,
  })
  return finished(run.id, timeoutMs)
}

function clean(problems: Problems) {
  expect(problems).toEqual({ errors: [], failed: [] })
}

async function noSideways(page: Page, width: number) {
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width)
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

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true })
  // One test failing only on an environment is enough to call it suspect here.
  server = await startServer(FILES, { args: ['--suspect-threshold', '1'] })
  browser = await launchBrowser()
  mixId = (await runOn('./tests/test_mix.py', 1)).id
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

describe('results in the web app', () => {
  it('shows the tests table, failures first, each linked to its log line', async () => {
    const { page, problems, context } = await newPage(browser, { bypassCSP: true })
    await page.goto(`${server.url}/runs/${mixId}`)
    const section = page.locator('section', {
      has: page.getByRole('heading', { name: 'Tests', exact: true }),
    })
    await section.getByRole('row').nth(1).waitFor()
    await expect(section.getByTestId('run-summary').innerText()).resolves.toBe(
      '1 failed, 1 error, 2 passed, 1 skipped',
    )
    const nodeids = await section
      .locator('[role=row][data-nodeid]')
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.nodeid))
    expect(nodeids).toEqual([
      'tests/test_mix.py::test_bad',
      'tests/test_mix.py::test_err',
      'tests/test_mix.py::test_ok_one',
      'tests/test_mix.py::test_ok_two',
      'tests/test_mix.py::test_skipped',
    ])
    const bad = section.locator('[data-nodeid="tests/test_mix.py::test_bad"]')
    expect(await bad.innerText()).toContain('one is not two')

    // The link lands on exactly the line the server names (0-based there, #L is 1-based).
    const results = await api<Results>(server, `/api/testruns/${mixId}/results`)
    const line = results.tests.find((t) => t.nodeid === 'tests/test_mix.py::test_bad')!.line!
    const text = (await api<Lines>(server, `/api/testruns/${mixId}/lines?from=${line}&limit=1`))
      .lines[0]!
    expect(text).toContain('test_bad')
    await bad.getByRole('link', { name: /the log line of/ }).click()
    await page.waitForURL(new RegExp(`#L${line + 1}$`))
    const marked = page.locator('[role=log] .line.marked')
    await marked.waitFor()
    expect(await marked.getAttribute('data-line')).toBe(String(line + 1))
    expect(await marked.locator('.txt').innerText()).toContain('test_bad')

    // A test's history: one mark, this run.
    await bad.getByRole('button', { name: /History of/ }).click()
    const mark = bad.locator('.strip a')
    await mark.first().waitFor()
    expect(await mark.count()).toBe(1)
    expect(await mark.first().getAttribute('href')).toBe(`/runs/${mixId}`)
    expect(await mark.first().getAttribute('title')).toContain('failed on env 1')

    // Filter and search narrow the table.
    await section.getByLabel('Outcome').selectOption('passed')
    expect(await section.locator('[role=row][data-nodeid]').count()).toBe(2)
    await section.getByLabel('Search tests').fill('two')
    expect(await section.locator('[role=row][data-nodeid]').count()).toBe(1)
    await section.getByLabel('Outcome').selectOption('')
    await section.getByLabel('Search tests').fill('')

    expect(await violations(page)).toEqual([])
    await page.screenshot({ path: `${SHOTS}/results-run-1280.png`, fullPage: true })
    clean(problems)
    await context.close()
  })

  it("shows each run's summary as text in the runs list", async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    const row = page.locator(`tbody tr[data-run-id="${mixId}"]`)
    await row.waitFor()
    await expect(row.locator('.c-status').innerText()).resolves.toMatch(
      /failed\s+1 failed, 1 error, 2 passed, 1 skipped/,
    )
    await page.screenshot({ path: `${SHOTS}/results-list-1280.png` })
    clean(problems)
    await context.close()
  })

  it('re-runs only the failed tests and opens the new run', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.evaluate(() => localStorage.setItem('testscheduler.username', 'rerunner'))
    await page.goto(`${server.url}/runs/${mixId}`)
    await page.getByRole('button', { name: 'Re-run failed' }).click()
    await page.waitForURL(
      (url) => /^\/runs\/\d+$/.test(url.pathname) && !url.pathname.endsWith(`/${mixId}`),
    )
    const newId = Number(new URL(page.url()).pathname.split('/').pop())
    const run = await finished(newId)
    expect(run.rerun_of).toBe(mixId)
    expect(run.select).toEqual(['tests/test_mix.py::test_bad', 'tests/test_mix.py::test_err'])
    await page.getByRole('link', { name: `re-run of #${mixId}` }).waitFor()
    const section = page.locator('section', {
      has: page.getByRole('heading', { name: 'Tests', exact: true }),
    })
    await section.locator('[role=row][data-nodeid]').nth(1).waitFor()
    const nodeids = await section
      .locator('[role=row][data-nodeid]')
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.nodeid))
    expect(nodeids).toEqual(['tests/test_mix.py::test_bad', 'tests/test_mix.py::test_err'])
    await expect(section.getByTestId('run-summary').innerText()).resolves.toBe('1 failed, 1 error')
    // It failed again: both buttons are there once it has ended.
    await page.getByRole('button', { name: 'Re-run failed' }).waitFor()
    expect(await page.getByRole('button', { name: 'Re-run', exact: true }).count()).toBe(1)
    clean(problems)
    await context.close()
  })

  it('lists a test that fails only on one environment on /tests, with its evidence', async () => {
    const evidence = [
      (await runOn('./tests/test_envdep.py', 2)).id,
      (await runOn('./tests/test_envdep.py', 2)).id,
      (await runOn('./tests/test_envdep.py', 1)).id,
    ]
    const { page, problems, context } = await newPage(browser, { bypassCSP: true })
    await page.goto(`${server.url}/tests`)
    const item = page.locator('[data-nodeid="tests/test_envdep.py::test_needs_env_1"]')
    await item.waitFor()
    expect(await item.innerText()).toMatch(/environment suspect/)
    const links = await item
      .locator('.evidence a')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href')))
    expect(links.length).toBeGreaterThan(0)
    for (const href of links) expect(evidence.map((id) => `/runs/${id}`)).toContain(href)
    const suspect = page.getByTestId('suspect-envs').locator('[data-env-id="2"]')
    expect(await suspect.innerText()).toMatch(/env 2\s+suspect\s+1 test fails only here/)
    expect(await suspect.getByRole('link').getAttribute('href')).toBe('/envs')
    expect(await violations(page)).toEqual([])
    await page.screenshot({ path: `${SHOTS}/results-tests-1280.png`, fullPage: true })
    await item.locator('.evidence a').first().click()
    await page.waitForURL(/\/runs\/\d+$/)
    clean(problems)
    await context.close()
  })

  it('shows 20,000 tests with a few DOM rows, quickly, and filters them', async () => {
    const many = await runOn('./tests/test_many.py', 3, 110_000)
    const { page, problems, context } = await newPage(browser)
    const t0 = Date.now()
    await page.goto(`${server.url}/runs/${many.id}`)
    const rows = page.locator('[role=table] [role=row][data-nodeid]')
    await rows.first().waitFor()
    const shown = Date.now() - t0
    expect(await rows.first().getAttribute('data-nodeid')).toBe(
      'tests/test_many.py::test_many[999]',
    )
    expect(await page.locator('[role=table]').getAttribute('aria-rowcount')).toBe('20001')
    expect(await rows.count()).toBeLessThan(60)
    const t1 = Date.now()
    await page.getByLabel('Search tests').fill('test_many[12345]')
    await page.locator('[data-nodeid="tests/test_many.py::test_many[12345]"]').waitFor()
    await waitFor('one row', async () => (await rows.count()) === 1)
    const searched = Date.now() - t1
    // Scrolled to its end, the last test shows.
    await page.getByLabel('Search tests').fill('')
    await page.locator('[role=table] .scroller').evaluate((el) => (el.scrollTop = el.scrollHeight))
    await page.locator('[data-nodeid="tests/test_many.py::test_many[19998]"]').waitFor()
    console.log(`20,000 tests: first row ${shown} ms after navigation, a search ${searched} ms`)
    clean(problems)
    await context.close()
  })

  it('shows the live summary while running, then the table when the run ends, unreloaded', async () => {
    const run = await api<Run>(server, '/api/testruns', {
      username: 'e2e',
      env_id: 5,
      path: './tests/test_gate.py',
    })
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/runs/${run.id}`)
    const summary = page.getByTestId('run-summary')
    await page.getByText('1 passed so far').waitFor()
    expect(await summary.innerText()).toBe('1 passed so far')
    expect(await page.getByRole('button', { name: 'Re-run' }).count()).toBe(0)
    writeFileSync(join(server.dir, 'gate'), '')
    await page.locator('[role=row][data-nodeid="tests/test_gate.py::test_gated"]').waitFor()
    expect(await summary.innerText()).toBe('2 passed')
    await page.getByRole('button', { name: 'Re-run', exact: true }).waitFor()
    expect(await page.getByRole('button', { name: 'Re-run failed' }).count()).toBe(0)
    clean(problems)
    await context.close()
  })

  it('narrows a run from the queue form with -k', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Name').fill('narrower')
    await page.getByLabel('Environment').selectOption('4')
    await page.getByLabel('Test path').fill('./tests/test_mix.py')
    await page.getByText('Narrow with -k / -m').click()
    await page.getByLabel('Keyword (-k)').fill('ok')
    await page.getByRole('button', { name: 'Queue run' }).click()
    await page.getByRole('status').getByRole('link').click()
    await page.waitForURL(/\/runs\/\d+$/)
    const id = Number(new URL(page.url()).pathname.split('/').pop())
    const run = await finished(id)
    expect((run as Run & { keyword: string | null }).keyword).toBe('ok')
    const results = await api<Results>(server, `/api/testruns/${id}/results`)
    expect(results.tests.map((t) => t.nodeid)).toEqual([
      'tests/test_mix.py::test_ok_one',
      'tests/test_mix.py::test_ok_two',
    ])
    await page.locator('[role=row][data-nodeid]').nth(1).waitFor()
    expect(await page.locator('dt', { hasText: 'Keyword (-k)' }).locator('+ dd').innerText()).toBe(
      'ok',
    )
    clean(problems)
    await context.close()
  })

  it('fits a phone: run page, runs list and /tests never scroll sideways', async () => {
    const { page, problems, context } = await newPage(browser, {
      viewport: { width: 390, height: 844 },
    })
    await page.goto(`${server.url}/runs/${mixId}`)
    const bad = page.locator('[data-nodeid="tests/test_mix.py::test_bad"]')
    await bad.waitFor()
    await bad.getByRole('button', { name: /History of/ }).click()
    await bad.locator('.strip a').first().waitFor()
    await noSideways(page, 390)
    await page.screenshot({ path: `${SHOTS}/results-run-390.png`, fullPage: true })
    await page.goto(`${server.url}/`)
    await page.locator(`tbody tr[data-run-id="${mixId}"]`).waitFor()
    await noSideways(page, 390)
    await page.screenshot({ path: `${SHOTS}/results-list-390.png` })
    await page.goto(`${server.url}/tests`)
    await page.getByRole('heading', { name: 'Tests' }).first().waitFor()
    await page.locator('.verdict, .msg').first().waitFor()
    await noSideways(page, 390)
    await page.screenshot({ path: `${SHOTS}/results-tests-390.png`, fullPage: true })
    clean(problems)
    await context.close()
  })
})
