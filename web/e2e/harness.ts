// Starts the real binary on a temporary project and drives headless Chromium.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

export const BIN = resolve(
  process.env.TESTSCHEDULER_BIN ?? resolve(import.meta.dirname, '../../target/debug/testscheduler'),
)
export const SHOTS = resolve(import.meta.dirname, '../test-results')

/** The pytest files of the e2e project. */
export const TEST_FILES: Record<string, string> = {
  'tests/test_quick.py': `
def test_quick():
    print("\\033[32mquick and green\\033[0m")
`,
  'tests/test_slow.py': `
import time

def test_slow():
    for i in range(1, 41):
        print(f"\\033[31mred\\033[0m line {i}", flush=True)
        time.sleep(0.25)
`,
  'tests/test_wait.py': `
import time

def test_1_warmup():
    time.sleep(3)

def test_2_wait():
    time.sleep(4)
`,
  'tests/test_big.py': `
import sys

def test_big():
    write = sys.stdout.write
    for i in range(200000):
        write(f"\\033[36m{i:06d}\\033[0m {'y' * 80}\\n")
`,
  'tests/test_escapes.py': `
def test_escapes():
    print("\\033]0;a window title\\007before\\033P+q544e\\033\\\\after")
    print("see \\033]8;;https://example.com/docs\\033\\\\the docs\\033]8;;\\033\\\\ here")
    print("and \\033]8;;javascript:alert(1)\\007refused label\\033]8;;\\007 too")
`,
  'tests/test_fail.py': `
def test_fail():
    print("about to fail")
    assert 1 == 2
`,
}

export interface Server {
  url: string
  dir: string
  proc: ChildProcess
  /** Stops the process; `keep` leaves the project and database for a restart. */
  stop(keep?: boolean): Promise<void>
}

export interface StartOptions {
  /** Reuse this project directory (and its database) instead of a new one. */
  dir?: string
  /** `host:port` to bind; a free port by default. */
  bind?: string
  /** More command-line arguments, e.g. `['--envs-file', path]`. */
  args?: string[]
}

export async function startServer(
  files: Record<string, string> = TEST_FILES,
  options: StartOptions = {},
): Promise<Server> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ts-e2e-'))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  const proc = spawn(
    BIN,
    [
      '--bind',
      options.bind ?? '127.0.0.1:0',
      '--database',
      join(dir, 'ts.db'),
      '--project-dir',
      dir,
      '--workers',
      '2',
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000)
  })
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${stderr}`)), 20_000)
    proc.once('exit', (code) => fail(new Error(`server exited ${code}:\n${stderr}`)))
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /^listening on (http:\/\/\S+)/.exec(line)
      if (m) {
        clearTimeout(timer)
        ok(m[1]!.replace(/\/$/, ''))
      }
    })
  })
  return {
    url,
    dir,
    proc,
    async stop(keep = false) {
      if (proc.exitCode === null) {
        const exited = new Promise((ok) => proc.once('exit', ok))
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      if (!keep) rmSync(dir, { recursive: true, force: true })
    },
  }
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
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
    ],
  })
}

/** Console errors and failed requests seen by a page; every test asserts both stay empty. */
export interface Problems {
  errors: string[]
  failed: string[]
}

export function watchProblems(page: Page): Problems {
  const problems: Problems = { errors: [], failed: [] }
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.errors.push(msg.text())
  })
  page.on('pageerror', (err) => problems.errors.push(String(err)))
  page.on('requestfailed', (req) => {
    // A WebSocket torn down on navigation or a download link is not a failure of the page.
    const why = req.failure()?.errorText ?? ''
    if (why.includes('ERR_ABORTED')) return
    problems.failed.push(`${req.method()} ${req.url()} ${why}`)
  })
  page.on('response', (res) => {
    if (res.status() >= 400)
      problems.failed.push(`${res.status()} ${res.request().method()} ${res.url()}`)
  })
  return problems
}

export async function newPage(
  browser: Browser,
  options: Parameters<Browser['newContext']>[0] = {},
): Promise<{ context: BrowserContext; page: Page; problems: Problems }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options })
  const page = await context.newPage()
  return { context, page, problems: watchProblems(page) }
}

export async function api<T>(server: Server, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`)
  return JSON.parse(text) as T
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
