// Measures the web app against the real binary (not run in CI):
//   1. a run whose test prints 1,000,000 lines of ~100 bytes: time from navigation
//      to /runs/{id} until its last line is visible, and the tab's JS heap then;
//   2. the compressed bytes of a first load of `/`.
// Usage: node bench/first-paint.mjs   (TESTSCHEDULER_BIN overrides the binary)
import { spawn } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
const BIN = resolve(process.env.TESTSCHEDULER_BIN ?? join(here, '../../target/debug/testscheduler'))
const LINES = Number(process.env.LINES ?? 1_000_000)

const dir = mkdtempSync(join(tmpdir(), 'ts-bench-'))
mkdirSync(join(dir, 'tests'))
writeFileSync(
  join(dir, 'tests/test_big.py'),
  `import sys

def test_big():
    pad = "x" * 88
    write = sys.stdout.write
    for i in range(${LINES}):
        write(f"\\033[32m{i:07d}\\033[0m {pad}\\n")
`,
)

const server = spawn(
  BIN,
  [
    '--bind',
    '127.0.0.1:0',
    '--database',
    join(dir, 'ts.db'),
    '--project-dir',
    dir,
    '--workers',
    '1',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } },
)
process.on('exit', () => server.kill('SIGKILL'))
const url = await new Promise((ok, fail) => {
  server.once('exit', (code) => fail(new Error(`server exited ${code}`)))
  createInterface({ input: server.stdout }).on('line', (line) => {
    const m = /^listening on (http:\/\/\S+)/.exec(line)
    if (m) ok(m[1])
  })
})

async function json(path, body) {
  const res = await fetch(url + path, {
    method: body ? 'POST' : 'GET',
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  })
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return res.json()
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--enable-precise-memory-info',
  ],
})

try {
  // First load of `/`: bytes on the wire (compressed), headers included.
  {
    const context = await browser.newContext()
    const page = await context.newPage()
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.enable')
    let wire = 0
    let count = 0
    cdp.on('Network.loadingFinished', (e) => {
      wire += e.encodedDataLength
      count += 1
    })
    await page.goto(`${url}/`, { waitUntil: 'networkidle' })
    console.log(`first load of /: ${count} responses, ${(wire / 1024).toFixed(1)} KiB on the wire`)
    await context.close()
  }

  const t0 = Date.now()
  const run = await json('/api/testruns', {
    username: 'bench',
    env_id: 1,
    path: './tests/test_big.py',
  })
  let status = run.status
  while (status === 'created' || status === 'running') {
    await new Promise((r) => setTimeout(r, 500))
    status = (await json(`/api/testruns/${run.id}`)).status
  }
  const secs = (Date.now() - t0) / 1000
  const total = (await json(`/api/testruns/${run.id}/lines?from=0&limit=1`)).total
  console.log(`run ${run.id} ${status}: ${total} lines stored in ${secs.toFixed(1)} s`)

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  await cdp.send('Performance.enable')
  const start = performance.now()
  await page.goto(`${url}/runs/${run.id}`)
  await page.locator(`[role=log] .line[data-line="${total}"] .txt`).waitFor({ state: 'visible' })
  const ms = performance.now() - start
  const { metrics } = await cdp.send('Performance.getMetrics')
  const metric = (name) => metrics.find((m) => m.name === name)?.value ?? NaN
  const rows = await page.locator('[role=log] .line').count()
  console.log(`/runs/${run.id}: last line (${total}) visible after ${ms.toFixed(0)} ms`)
  console.log(
    `tab: JS heap used ${(metric('JSHeapUsedSize') / 2 ** 20).toFixed(1)} MiB, ` +
      `${metric('Nodes')} DOM nodes, ${rows} log rows rendered`,
  )
  // Scroll to the very top: windows are fetched on demand.
  const t1 = performance.now()
  await page.locator('[role=log]').evaluate((el) => (el.scrollTop = 0))
  await page.locator('[role=log] .line[data-line="1"] .txt').waitFor({ state: 'visible' })
  console.log(`jump to line 1: ${(performance.now() - t1).toFixed(0)} ms`)
  await context.close()

  // Follow a second such run live, from its first line to its last.
  {
    const live = await json('/api/testruns', {
      username: 'bench',
      env_id: 2,
      path: './tests/test_big.py',
    })
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const cdp = await context.newCDPSession(page)
    await cdp.send('Performance.enable')
    const start = performance.now()
    await page.goto(`${url}/runs/${live.id}`)
    await page.locator('.status-text', { hasText: 'succeeded' }).waitFor({ timeout: 300_000 })
    await page.locator(`[role=log] .line[data-line="${total}"] .txt`).waitFor({ state: 'visible' })
    const ms = performance.now() - start
    // Every rendered row must be the line its number says: no gap, no repeat.
    const rows = await page.$$eval('[role=log] .line', (els) =>
      els.map((el) => [Number(el.dataset.line), el.querySelector('.txt').textContent]),
    )
    // Line n (1-based) shows the test's line n - 1 - offset (pytest's header comes first).
    const numbered = rows
      .map(([n, text]) => [n, /(\d{7}) x/.exec(text)?.[1]])
      .filter(([, num]) => num !== undefined)
    const offset = numbered.length ? numbered[0][0] - 1 - Number(numbered[0][1]) : 0
    const bad = numbered.filter(([n, num]) => Number(num) !== n - 1 - offset)
    console.log(
      `live follow: ${numbered.length} numbered rows checked, ${bad.length} out of place`,
      JSON.stringify(bad.slice(0, 3)),
    )
    const { metrics } = await cdp.send('Performance.getMetrics')
    const heap = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? NaN
    console.log(
      `live follow of run ${live.id}: last line visible ${(ms / 1000).toFixed(1)} s after opening, ` +
        `JS heap ${(heap / 2 ** 20).toFixed(1)} MiB`,
    )
    await context.close()
  }
} finally {
  await browser.close()
  server.kill('SIGTERM')
  await new Promise((r) => server.once('exit', r))
  rmSync(dir, { recursive: true, force: true })
}
