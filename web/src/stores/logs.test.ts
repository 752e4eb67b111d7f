import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { LinesPage } from '../lib/api/types'

const linesMock = vi.fn<(id: number, from: number, limit: number) => Promise<LinesPage>>()
vi.mock('../lib/api/client', async (orig) => ({
  ...(await orig<typeof import('../lib/api/client')>()),
  api: { lines: (id: number, from: number, limit: number) => linesMock(id, from, limit) },
}))

const { useLogsStore } = await import('./logs')
const { useLiveStore } = await import('./live')

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => `l${from + i}`)
let frames: (() => void)[] = []

beforeEach(() => {
  setActivePinia(createPinia())
  frames = []
  vi.stubGlobal('requestAnimationFrame', (fn: () => void) => frames.push(fn))
  linesMock.mockReset()
})

async function settle() {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

describe('logs store', () => {
  it('loads the first window, then follows from its end', async () => {
    linesMock.mockResolvedValue({ id: 1, from: 0, total: 3, lines: range(0, 3) })
    const live = useLiveStore()
    const follow = vi.spyOn(live.socket, 'follow')
    const session = useLogsStore().open(1, true)
    await settle()
    expect(session.ready.value).toBe(true)
    expect(follow).toHaveBeenCalledOnce()
    const cursor = follow.mock.calls[0]![1]
    expect(cursor()).toEqual({ from: 3 })
  })

  it('applies a frame of batches at once, without duplicates or gaps', async () => {
    linesMock.mockResolvedValue({ id: 1, from: 0, total: 2, lines: range(0, 2) })
    const logs = useLogsStore()
    const session = logs.open(1, true)
    await settle()
    const v = session.version.value
    logs.receive({ event: 'logLines', id: 1, from: 2, lines: range(2, 2) })
    logs.receive({ event: 'logLines', id: 1, from: 1, lines: range(1, 4) }) // replayed overlap
    logs.receive({ event: 'logPartial', id: 1, line: 5, text: 'half' })
    expect(session.buffer.total).toBe(2) // nothing applied before the frame
    expect(frames).toHaveLength(1) // one frame scheduled for all three
    frames.shift()!()
    expect(session.version.value).toBe(v + 1)
    const rows = Array.from({ length: session.buffer.rowCount() }, (_, i) => session.buffer.row(i))
    expect(rows).toEqual([...range(0, 5), 'half'])
    logs.receive({ event: 'logEnd', id: 1, total: 6, status: 'succeeded' })
    frames.shift()!()
    expect(session.buffer.ended).toBe(true)
    expect(session.buffer.rowCount()).toBe(6)
  })

  it('follows again from next on lagged', async () => {
    linesMock.mockResolvedValue({ id: 4, from: 0, total: 0, lines: [] })
    const live = useLiveStore()
    const refollow = vi.spyOn(live.socket, 'refollow')
    const logs = useLogsStore()
    const session = logs.open(4, true)
    await settle()
    logs.receive({ event: 'logLines', id: 4, from: 0, lines: range(0, 10) })
    logs.receive({ event: 'lagged', id: 4, next: 10 })
    frames.shift()!()
    expect(refollow).toHaveBeenCalledWith(4)
    expect(session.buffer.next).toBe(10)
  })

  it('a finished run is not followed; windows are fetched on demand', async () => {
    linesMock.mockImplementation(async (_id, from, limit) => ({
      id: 2,
      from,
      total: 5000,
      lines: range(from, Math.min(limit, 5000 - from)),
    }))
    const live = useLiveStore()
    const follow = vi.spyOn(live.socket, 'follow')
    const logs = useLogsStore()
    const session = logs.open(2, false)
    await settle()
    expect(follow).not.toHaveBeenCalled()
    expect(session.buffer.total).toBe(5000)
    logs.ensureRange(2, 4950, 5000)
    expect(linesMock).toHaveBeenLastCalledWith(2, 4000, 1000)
    await settle()
    expect(session.buffer.row(4999)).toBe('l4999')
  })

  it('applies events even when no frame comes (hidden tab)', async () => {
    linesMock.mockResolvedValue({ id: 5, from: 0, total: 0, lines: [] })
    const logs = useLogsStore()
    const session = logs.open(5, true)
    await settle()
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      logs.receive({ event: 'logLines', id: 5, from: 0, lines: range(0, 3) })
      expect(session.buffer.total).toBe(0)
      vi.advanceTimersByTime(300)
      expect(session.buffer.total).toBe(3)
      frames.shift()!() // the late frame does not apply anything twice
      expect(session.buffer.total).toBe(3)
    } finally {
      vi.useRealTimers()
    }
  })
})
