// Screenshots of the main pages: desktop and phone, light and dark (for a person to look at).
import { mkdirSync } from 'node:fs'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, launchBrowser, newPage, SHOTS, startServer, type Server } from './harness'

let server: Server
let browser: Browser
let slowId = 0

beforeAll(async () => {
  server = await startServer()
  browser = await launchBrowser()
  mkdirSync(SHOTS, { recursive: true })
  await api(server, '/api/testruns', {
    username: 'alice',
    env_id: 1,
    path: './tests/test_quick.py',
  })
  await api(server, '/api/testruns', { username: 'bob', env_id: 2, path: './tests/test_fail.py' })
  const slow = await api<{ id: number }>(server, '/api/testruns', {
    username: 'carol',
    env_id: 3,
    path: './tests/test_slow.py',
  })
  slowId = slow.id
  // A remote worker saying it is alive shows in the workers panel.
  await api(server, '/api/workers/heartbeat', {
    id: 'rig-07',
    host: 'lab-host-7',
    slots: 2,
    running: [],
  })
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

describe('screens', () => {
  for (const scheme of ['light', 'dark'] as const) {
    for (const [name, viewport] of [
      ['desktop', { width: 1280, height: 860 }],
      ['phone', { width: 390, height: 844 }],
    ] as const) {
      it(`${name} ${scheme}`, async () => {
        const { page, problems, context } = await newPage(browser, {
          viewport,
          colorScheme: scheme,
        })
        await page.goto(`${server.url}/`)
        await page
          .getByRole('link', { name: /Run \d+/ })
          .first()
          .waitFor()
        await page.getByText('rig-07').waitFor()
        await page.screenshot({ path: `${SHOTS}/home-${name}-${scheme}.png`, fullPage: true })
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
          viewport.width,
        )
        await page.goto(`${server.url}/runs/${slowId}#L3`)
        await page.locator('[role=log] .line').first().waitFor()
        await page.waitForTimeout(1500)
        await page.screenshot({ path: `${SHOTS}/run-${name}-${scheme}.png` })
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
          viewport.width,
        )
        expect(problems).toEqual({ errors: [], failed: [] })
        await context.close()
      })
    }
  }
})
