// The live channel survives a server restart: the page reconnects by itself.
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { api, launchBrowser, newPage, SHOTS, startServer, TEST_FILES, type Server } from './harness'

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
