// Accessibility: axe-core finds no violation on the main pages, light and dark.
import { createRequire } from 'node:module'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, launchBrowser, newPage, startServer, waitFor, type Server } from './harness'

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

let server: Server
let browser: Browser
let runId = 0

beforeAll(async () => {
  server = await startServer()
  browser = await launchBrowser()
  const run = await api<{ id: number }>(server, '/api/testruns', {
    username: 'axe',
    env_id: 1,
    path: './tests/test_fail.py',
  })
  runId = run.id
  await waitFor('run end', async () => {
    const r = await api<{ status: string }>(server, `/api/testruns/${runId}`)
    return r.status === 'failed'
  })
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

interface Violation {
  id: string
  impact: string | null
  help: string
  nodes: { target: string[] }[]
}

async function violations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE })
  const found = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: () => Promise<{ violations: unknown[] }> } })
      .axe
    return (await axe.run()).violations
  })) as Violation[]
  return found
    .filter((v) => v.impact !== null)
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
    )
}

describe('accessibility', () => {
  for (const scheme of ['light', 'dark'] as const) {
    it(`runs list, run page, environments and tests, ${scheme}`, async () => {
      // axe is injected as a script of the test's own: our CSP refuses it, as it should.
      const { page, context } = await newPage(browser, { colorScheme: scheme, bypassCSP: true })
      await page.goto(`${server.url}/`)
      await page.locator('tbody tr').first().waitFor()
      expect(await violations(page)).toEqual([])
      await page.goto(`${server.url}/runs/${runId}`)
      await page.locator('[role=log] .line').first().waitFor()
      expect(await violations(page)).toEqual([])
      await page.goto(`${server.url}/envs`)
      await page.locator('[data-env-id="1"]').waitFor()
      await page.locator('[data-env-id="2"]').getByRole('button', { name: 'Reserve' }).click()
      await page.locator('[data-env-id="3"]').getByRole('button', { name: 'Show queue' }).click()
      await page.locator('[data-env-id="3"]').getByText('Nobody waits.').waitFor()
      expect(await violations(page)).toEqual([])
      await page.goto(`${server.url}/tests`)
      await page.getByRole('heading', { name: 'Tests' }).waitFor()
      expect(await violations(page)).toEqual([])
      await context.close()
    })
  }
})
