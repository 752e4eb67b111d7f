// End to end: the queue and the environments page, with the real binary, an
// envs file and runs that hold their environment until the test lets them go.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Locator, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  launchBrowser,
  newPage,
  SHOTS,
  startServer,
  TEST_FILES,
  waitFor,
  type Problems,
  type Server,
} from './harness'

interface Run {
  id: number
  status: string
  queue_position: number | null
  eta: string | null
}
interface Env {
  id: number
  state: string
  queue_length: number
}

/** Each environment's runs of test_hold.py hold it until `release-<HOLD>` exists. */
const ENVS_TOML = `
[[env]]
id = 1
name = "staging-1"
labels = ["staging", "eu"]
description = "EU staging stack"
[env.vars]
HOLD = "one"

[[env]]
id = 2
name = "staging-2"
labels = ["staging"]
description = "US staging stack"
[env.vars]
HOLD = "two"

[[env]]
id = 3
name = "board-rpi4"
labels = ["board", "arm64"]
description = "Raspberry Pi 4 on the lab bench"
[env.vars]
HOLD = "three"

[[env]]
id = 4
name = "board-jetson-orin-with-a-long-name"
labels = ["board"]
description = "Jetson Orin in rack 2"
[env.vars]
HOLD = "four"
`

const HOLD = `
import os, time

def test_hold():
    release = os.path.join(os.path.dirname(__file__), "..", "release-" + os.environ["HOLD"])
    for _ in range(1800):
        if os.path.exists(release):
            return
        time.sleep(0.1)
    raise AssertionError("never released")
`

let server: Server
let browser: Browser

beforeAll(async () => {
  server = await startServer({ ...TEST_FILES, 'tests/test_hold.py': HOLD, 'envs.toml': ENVS_TOML })
  // Restart with the envs file now that it is written into the project.
  const dir = server.dir
  await server.stop(true)
  server = await startServer(
    {},
    { dir, args: ['--envs-file', join(dir, 'envs.toml'), '--max-reservation', '3600'] },
  )
  browser = await launchBrowser()
  mkdirSync(SHOTS, { recursive: true })
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

function release(hold: string) {
  writeFileSync(join(server.dir, `release-${hold}`), '')
}

/** Runs of test_hold.py on that environment hold it again. */
function hold(name: string) {
  rmSync(join(server.dir, `release-${name}`), { force: true })
}

function run(body: Record<string, unknown>): Promise<Run> {
  return api<Run>(server, '/api/testruns', { username: 'e2e', ...body })
}

function getRun(id: number): Promise<Run> {
  return api<Run>(server, `/api/testruns/${id}`)
}

async function until(what: string, id: number, ok: (r: Run) => boolean): Promise<Run> {
  return waitFor(
    what,
    async () => {
      const r = await getRun(id)
      return ok(r) ? r : null
    },
    60_000,
  )
}

function card(page: Page, id: number): Locator {
  return page.locator(`[data-env-id="${id}"]`)
}

async function waitState(page: Page, id: number, state: string): Promise<void> {
  await card(page, id)
    .locator('.state', { hasText: new RegExp(`^\\s*${state}\\s*$`) })
    .waitFor({
      timeout: 60_000,
    })
}

function clean(problems: Problems) {
  expect(problems).toEqual({ errors: [], failed: [] })
}

describe('queue and environments', () => {
  it('queues behind a busy environment from the form, shows position 1, then starts', async () => {
    // A first hold run that finishes gives the path a duration to estimate from.
    release('one')
    const warm = await run({ env_id: 1, path: './tests/test_hold.py' })
    await until('warm-up end', warm.id, (r) => r.status === 'succeeded')
    hold('one')
    const holder = await run({ env_id: 1, path: './tests/test_hold.py', username: 'holder' })
    await until('holder running', holder.id, (r) => r.status === 'running')

    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Name').fill('bob')
    const picker = page.getByLabel('Environment')
    await picker.locator('option[value="1"]', { hasText: 'busy' }).waitFor({ state: 'attached' })
    expect(await picker.locator('option[value="1"]').innerText()).toContain('staging-1')
    await picker.selectOption('1')
    expect(await page.getByLabel('Wait if busy').isChecked()).toBe(true)
    await page.getByLabel('Test path').fill('./tests/test_quick.py')
    await page.getByRole('button', { name: 'Queue run' }).click()
    const status = page.getByRole('status').filter({ hasText: 'waits' })
    await status.waitFor()
    expect(await status.innerText()).toContain('position 1')
    const id = Number((await status.getByRole('link').innerText()).replace(/\D/g, ''))
    // The list says queued too.
    const row = page.locator(`tbody tr[data-run-id="${id}"]`)
    await row.waitFor()
    expect(await row.innerText()).toContain('queued')

    await page.goto(`${server.url}/runs/${id}`)
    const place = page.locator('.waiting[role=status]')
    await place.waitFor()
    const text = await place.innerText()
    expect(text).toContain('position 1')
    expect(text).toContain('staging-1')
    expect(text).toContain('expected ')
    expect(await page.locator('.status-text').innerText()).toBe('queued')
    expect(await page.getByRole('button', { name: 'Cancel' }).isVisible()).toBe(true)
    await page.screenshot({ path: `${SHOTS}/run-queued-desktop-light.png` })

    // The holder ends: the queued run starts and the page follows without a reload.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1))
    release('one')
    await page
      .locator('.status-text', { hasText: /^(created|running|succeeded)$/ })
      .waitFor({ timeout: 60_000 })
    await page.locator('.waiting').waitFor({ state: 'detached' })
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1)
    await page.locator('.status-text', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 })
    clean(problems)
    await context.close()
  })

  it('/envs shows the states and follows a run taking and leaving an environment live', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/`)
    await page.getByRole('link', { name: 'Environments' }).click()
    await page.waitForURL(/\/envs$/)
    await waitState(page, 2, 'free')
    expect(await card(page, 2).innerText()).toContain('staging-2')
    expect(await card(page, 2).innerText()).toContain('0 waiting')
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1))

    const holder = await run({ env_id: 2, path: './tests/test_hold.py', username: 'dora' })
    await waitState(page, 2, 'busy')
    await card(page, 2).getByText('dora').waitFor()
    expect(await card(page, 2).locator(`a[href="/runs/${holder.id}"]`).count()).toBe(1)

    const waiting = await run({ env_id: 2, path: './tests/test_quick.py', wait: true })
    expect(waiting.status).toBe('queued')
    await card(page, 2).getByText('1 waiting').waitFor()
    await card(page, 2).getByRole('button', { name: 'Show queue' }).click()
    const item = card(page, 2).locator('ol li').first()
    await item.waitFor()
    expect(await item.innerText()).toContain('position 1')
    expect(await item.innerText()).toContain(`run #${waiting.id}`)

    release('two')
    await until('queued run done', waiting.id, (r) => r.status === 'succeeded')
    await waitState(page, 2, 'free')
    await card(page, 2).getByText('0 waiting').waitFor()
    await card(page, 2).getByText('Nobody waits.').waitFor()
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1)
    clean(problems)
    await context.close()
  })

  it('disables and enables an environment from /envs', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/envs`)
    await waitState(page, 3, 'free')
    await card(page, 3).getByRole('button', { name: 'Disable' }).click()
    await card(page, 3).getByLabel('Reason').fill('rewiring the serial console')
    await card(page, 3).getByRole('button', { name: 'Disable board-rpi4' }).click()
    await waitState(page, 3, 'disabled')
    expect(await card(page, 3).innerText()).toContain('rewiring the serial console')
    const env = await api<Env>(server, '/api/envs/3')
    expect(env.state).toBe('disabled')
    // The form's picker says so too.
    await page.getByRole('link', { name: 'Runs', exact: true }).click()
    const option = page.getByLabel('Environment').locator('option[value="3"]')
    await option.waitFor({ state: 'attached' })
    expect(await option.innerText()).toContain('disabled')
    await page.getByRole('link', { name: 'Environments' }).click()
    await card(page, 3).getByRole('button', { name: 'Enable' }).click()
    await waitState(page, 3, 'free')
    expect((await api<Env>(server, '/api/envs/3')).state).toBe('free')
    clean(problems)
    await context.close()
  })

  it('reserves from /envs (the server error beside Duration), then releases', async () => {
    const { page, problems, context } = await newPage(browser)
    await page.goto(`${server.url}/envs`)
    await waitState(page, 4, 'free')
    const c = card(page, 4)
    await c.getByRole('button', { name: 'Reserve' }).click()
    await c.getByLabel('Name', { exact: true }).fill('erin')
    await c.getByLabel('Duration').selectOption({ label: '2 hours' })
    await c.getByLabel('Note').fill('flashing firmware')
    await c.getByRole('button', { name: /^Reserve board/ }).click()
    // 2 hours is over --max-reservation 3600: a 400 on duration_s, shown beside it.
    await c.locator('select[name=duration_s][aria-invalid=true]').waitFor()
    const err = await c.locator('.field-error').first().innerText()
    expect(err.length).toBeGreaterThan(0)
    // The browser logs the expected 400 itself; nothing else may fail.
    problems.failed = problems.failed.filter((f) => !/^400 POST .*\/reservations$/.test(f))
    problems.errors = problems.errors.filter((e) => !e.includes('400'))
    await c.getByLabel('Duration').selectOption({ label: '1 hour' })
    await c.getByRole('button', { name: /^Reserve board/ }).click()
    await waitState(page, 4, 'reserved')
    expect(await c.innerText()).toContain('erin')
    expect(await c.innerText()).toContain('flashing firmware')
    expect(await c.locator('time').count()).toBeGreaterThan(0)
    await c.getByRole('button', { name: 'Release' }).click()
    await waitState(page, 4, 'free')
    clean(problems)
    await context.close()
  })

  it('screens of /envs: desktop and phone, light and dark', async () => {
    // Something in every state: busy with a queue, reserved, disabled, free.
    hold('one')
    const holder = await run({ env_id: 1, path: './tests/test_hold.py', username: 'frank' })
    await until('hold running', holder.id, (r) => r.status === 'running' || r.status === 'created')
    await run({ env_id: 1, path: './tests/test_quick.py', wait: true, username: 'gina' })
    await run({ labels: ['staging'], path: './tests/test_quick.py', wait: true, priority: 3 })
    await api(server, '/api/envs/4/reservations', {
      username: 'harriet',
      duration_s: 1800,
      note: 'bisecting a kernel panic on the serial console',
    })
    await api(server, '/api/envs/3/disable', { reason: 'power supply replaced' })
    try {
      for (const scheme of ['light', 'dark'] as const) {
        for (const [name, viewport] of [
          ['desktop', { width: 1280, height: 860 }],
          ['phone', { width: 390, height: 844 }],
        ] as const) {
          const { page, problems, context } = await newPage(browser, {
            viewport,
            colorScheme: scheme,
          })
          await page.goto(`${server.url}/envs`)
          await waitState(page, 4, 'reserved')
          await card(page, 1).getByRole('button', { name: 'Show queue' }).click()
          await card(page, 1).locator('ol li').first().waitFor()
          await card(page, 2).getByRole('button', { name: 'Reserve' }).click()
          await page.screenshot({ path: `${SHOTS}/envs-${name}-${scheme}.png`, fullPage: true })
          expect(
            await page.evaluate(() => document.documentElement.scrollWidth),
          ).toBeLessThanOrEqual(viewport.width)
          await page.goto(`${server.url}/`)
          await page.getByLabel('Wait if busy').waitFor()
          await page.screenshot({ path: `${SHOTS}/form-${name}-${scheme}.png` })
          expect(
            await page.evaluate(() => document.documentElement.scrollWidth),
          ).toBeLessThanOrEqual(viewport.width)
          await page.goto(`${server.url}/tests`)
          await page.getByRole('heading', { name: 'Tests' }).waitFor()
          clean(problems)
          await context.close()
        }
      }
    } finally {
      release('one')
      release('two')
    }
  })
})
