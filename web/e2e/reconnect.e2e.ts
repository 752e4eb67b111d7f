// The live channel survives a server restart: the page reconnects by itself.
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  api,
  launchBrowser,
  newPage,
  SHOTS,
  startServer,
  TEST_FILES,
  waitFor,
  type Server,
} from './harness'

let server: Server
let browser: Browser

beforeAll(async () => {
  server = await startServer()
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

it('reconnects after a restart and shows runs queued meanwhile and after', async () => {
  const { page, problems, context } = await newPage(browser)
  await page.goto(`${server.url}/`)
  await page.getByText('Live', { exact: true }).waitFor()

  const bind = new URL(server.url).host
  const dir = server.dir
  await server.stop(true)
  await page.getByText('Reconnecting…').waitFor()
  await page.screenshot({ path: `${SHOTS}/e2e-reconnecting.png` })

  server = await startServer(TEST_FILES, { dir, bind })
  // Queued while the page was still away: found by the refetch after reconnecting.
  await api(server, '/api/testruns', {
    username: 'while-away',
    env_id: 40,
    path: './tests/test_quick.py',
  })
  await page.getByText('Live', { exact: true }).waitFor({ timeout: 30_000 })
  await page.locator('tbody tr', { hasText: 'while-away' }).waitFor()
  // Queued after: arrives over the new connection.
  await api(server, '/api/testruns', {
    username: 'after-back',
    env_id: 41,
    path: './tests/test_quick.py',
  })
  await page.locator('tbody tr', { hasText: 'after-back' }).waitFor()

  // Only the browser's own reports of the refused connections while the server was down.
  expect(problems.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(e))).toEqual([])
  expect(problems.failed.filter((f) => !/ERR_CONNECTION_REFUSED|\/ws/.test(f))).toEqual([])
  await context.close()
})

it('a run page follows again from its next line after a restart: no gap, no repeat', async () => {
  const run = await api<{ id: number }>(server, '/api/testruns', {
    username: 'restart',
    env_id: 42,
    path: './tests/test_slow.py',
  })
  const { page, problems, context } = await newPage(browser, {
    viewport: { width: 1280, height: 1800 },
  })
  await page.goto(`${server.url}/runs/${run.id}`)
  await page.locator('[role=log] .line', { hasText: 'red line 4' }).first().waitFor()

  const bind = new URL(server.url).host
  const dir = server.dir
  await server.stop(true)
  await page.getByText('Reconnecting…').waitFor()
  server = await startServer(TEST_FILES, { dir, bind })
  await page.getByText('Live', { exact: true }).waitFor({ timeout: 30_000 })

  // The restarted server ends the run it lost; the page learns it over the new connection.
  const final = await waitFor('run to end', async () => {
    const r = await api<{ status: string }>(server, `/api/testruns/${run.id}`)
    return r.status !== 'running' && r.status !== 'created' ? r.status : null
  })
  await page.locator('.status-text', { hasText: final }).waitFor()
  const expected = await api<{ total: number; lines: string[] }>(
    server,
    `/api/testruns/${run.id}/lines?from=0&limit=1000`,
  )
  await waitFor('the page to show every stored line', async () => {
    const n = await page.locator('[role=log] .line').count()
    return n === expected.total
  })
  const rows = await page.$$eval('[role=log] .line', (els) =>
    els.map((el) => [
      Number((el as HTMLElement).dataset.line),
      el.querySelector('.txt')!.textContent,
    ]),
  )
  expect(rows.map(([n]) => n)).toEqual(expected.lines.map((_, i) => i + 1))
  // eslint-disable-next-line no-control-regex
  const sgr = /\u001b\[[0-9;]*m/g
  expect(rows.map(([, t]) => t)).toEqual(expected.lines.map((l) => l.replace(sgr, '')))

  expect(problems.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(e))).toEqual([])
  expect(problems.failed.filter((f) => !/ERR_CONNECTION_REFUSED|\/ws/.test(f))).toEqual([])
  await context.close()
})
