// The connection store routes each `/ws` event to the stores that registered for it.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { Run } from '../lib/api/types'

const sockets: FakeSocket[] = []
class FakeSocket {
  readyState = 0
  onopen: ((ev: Event) => unknown) | null = null
  onmessage: ((ev: MessageEvent) => unknown) | null = null
  onclose: ((ev: CloseEvent) => unknown) | null = null
  onerror: ((ev: Event) => unknown) | null = null
  constructor() {
    sockets.push(this)
  }
  send() {}
  close() {
    this.readyState = 3
  }
  open() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }
  drop() {
    this.readyState = 3
    this.onclose?.(new Event('close') as CloseEvent)
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent)
  }
}

const listRuns = vi.fn(async () => [] as Run[])
vi.mock('../lib/api/client', async (orig) => ({
  ...(await orig<typeof import('../lib/api/client')>()),
  api: { listRuns: () => listRuns(), workers: async () => [], envs: async () => [] },
}))

const { useLiveStore } = await import('./live')
const { useRunsStore } = await import('./runs')
const { useWorkersStore } = await import('./workers')

const run: Run = {
  id: 7,
  username: 'alice',
  priority: 0,
  created_at: '2026-11-25T07:00:00+00:00',
  env_id: 1,
  path: './tests/test_a.py',
  status: 'running',
  logs: false,
  timeout_s: 60,
  lines: 0,
}

beforeEach(() => {
  setActivePinia(createPinia())
  sockets.length = 0
  vi.stubGlobal('WebSocket', FakeSocket)
})

describe('live store', () => {
  it('routes run and worker events to the stores that registered', () => {
    const runs = useRunsStore()
    const workers = useWorkersStore()
    const live = useLiveStore()
    live.start()
    const socket = sockets[0]!
    socket.open()
    socket.receive({ event: 'taskAdded', run })
    expect(runs.byId[7]?.status).toBe('running')
    socket.receive({ event: 'taskChanged', run: { ...run, status: 'failed' } })
    expect(runs.byId[7]?.status).toBe('failed')
    const w = { id: 'w1', host: 'h', slots: 1, running: [], last_seen: run.created_at }
    socket.receive({ event: 'workersChanged', workers: [w] })
    expect(workers.workers).toEqual([w])
  })

  it('an unsubscribed handler hears nothing; reconnect handlers run after a reconnect', () => {
    const live = useLiveStore()
    const seen = vi.fn()
    const off = live.on(['taskAdded'], seen)
    const again = vi.fn()
    live.onReconnect(again)
    live.start()
    sockets[0]!.open()
    sockets[0]!.receive({ event: 'taskAdded', run })
    off()
    sockets[0]!.receive({ event: 'taskAdded', run })
    expect(seen).toHaveBeenCalledOnce()
    expect(again).not.toHaveBeenCalled()
    live.socket.stop()
    live.socket.start()
    sockets[1]!.open()
    expect(again).toHaveBeenCalledOnce()
  })
})
