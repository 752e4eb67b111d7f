import { describe, expect, it } from 'vitest'
import { CHUNK, LogBuffer } from './logBuffer'

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => `line ${from + i}`)

function rows(buf: LogBuffer): (string | undefined)[] {
  return Array.from({ length: buf.rowCount() }, (_, i) => buf.row(i))
}

describe('LogBuffer', () => {
  it('appends stream batches and advances the cursor', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 3))
    buf.applyStream(3, range(3, 2))
    expect(buf.total).toBe(5)
    expect(buf.next).toBe(5)
    expect(rows(buf)).toEqual(range(0, 5))
  })

  it('stores a line received twice once (overlapping batches, page + stream)', () => {
    const buf = new LogBuffer()
    buf.applyPage(0, range(0, 4), 4)
    buf.applyStream(2, range(2, 4)) // replay after a reconnect overlaps 2..3
    buf.applyStream(5, range(5, 1))
    expect(rows(buf)).toEqual(range(0, 6))
    expect(buf.next).toBe(6)
  })

  it('leaves a hole, not a shift, when a batch starts past the end; the hole is reported', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 2))
    buf.applyStream(5, range(5, 2))
    expect(buf.total).toBe(7)
    expect(buf.row(3)).toBeUndefined()
    expect(buf.row(5)).toBe('line 5')
    expect(buf.missingChunks(0, 7)).toEqual([0])
    buf.applyPage(2, range(2, 3), 7)
    expect(buf.missingChunks(0, 7)).toEqual([])
    expect(rows(buf)).toEqual(range(0, 7))
  })

  it('shows the partial line last and replaces it by the full line', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 2))
    buf.applyPartial(2, 'test_a.py::test_slow ')
    expect(buf.rowCount()).toBe(3)
    expect(buf.row(2)).toBe('test_a.py::test_slow ')
    buf.applyPartial(2, 'test_a.py::test_slow PASS')
    expect(buf.rowCount()).toBe(3)
    buf.applyStream(2, ['test_a.py::test_slow PASSED'])
    expect(buf.partial).toBeNull()
    expect(rows(buf)).toEqual(['line 0', 'line 1', 'test_a.py::test_slow PASSED'])
  })

  it('ignores a partial for a line it already has', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 3))
    buf.applyPartial(1, 'stale')
    expect(buf.partial).toBeNull()
    expect(buf.rowCount()).toBe(3)
  })

  it('opens a big log at its tail: total known, only fetched windows stored', () => {
    const buf = new LogBuffer()
    buf.applyPage(0, range(0, CHUNK), 1_000_000)
    expect(buf.total).toBe(1_000_000)
    expect(buf.missingChunks(999_950, 1_000_000)).toEqual([999])
    buf.applyPage(999_000, range(999_000, CHUNK), 1_000_000)
    expect(buf.missingChunks(999_950, 1_000_000)).toEqual([])
    expect(buf.row(999_999)).toBe('line 999999')
    expect(buf.chunkCount()).toBe(2)
  })

  it('treats the last, growing chunk as loaded only up to total', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 10))
    expect(buf.chunkLoaded(0)).toBe(true)
    buf.applyPage(0, [], 12)
    expect(buf.chunkLoaded(0)).toBe(false)
  })

  it('follows again from next after lagged, and never past what it has', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 10))
    expect(buf.applyLagged(10)).toBe(10)
    expect(buf.applyLagged(7)).toBe(7)
    buf.applyStream(7, range(7, 5))
    expect(rows(buf)).toEqual(range(0, 12))
  })

  it('marks the end and drops the partial', () => {
    const buf = new LogBuffer()
    buf.applyStream(0, range(0, 2))
    buf.applyPartial(2, 'half')
    buf.applyEnd(3)
    expect(buf.ended).toBe(true)
    expect(buf.partial).toBeNull()
    expect(buf.total).toBe(3)
    expect(buf.missingChunks(0, 3)).toEqual([0])
  })

  it('trims the chunks farthest from the focus, keeping focus and tail', () => {
    const buf = new LogBuffer()
    for (let c = 0; c < 10; c++) buf.applyPage(c * CHUNK, range(c * CHUNK, CHUNK), 10 * CHUNK)
    buf.trim(2 * CHUNK + 5, 4)
    expect(buf.chunkCount()).toBe(4)
    expect(buf.has(2 * CHUNK)).toBe(true)
    expect(buf.has(9 * CHUNK)).toBe(true)
    expect(buf.has(0)).toBe(false)
    expect(buf.missingChunks(0, CHUNK)).toEqual([0])
  })
})
