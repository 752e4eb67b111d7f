import { describe, expect, it } from 'vitest'
import { LiveSocket, type Cursor, type SocketLike } from './ws'

class FakeSocket implements SocketLike {
  readyState = 0
  sent: unknown[] = []
  onopen: ((ev: Event) => unknown) | null = null
  onmessage: ((ev: MessageEvent) => unknown) | null = null
  onclose: ((ev: CloseEvent) => unknown) | null = null
  onerror: ((ev: Event) => unknown) | null = null
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
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

function harness() {
  const sockets: FakeSocket[] = []
  const timers: { fn: () => void; ms: number }[] = []
  const live = new LiveSocket({
    url: 'ws://test/ws',
    createSocket: () => {
      const s = new FakeSocket()
      sockets.push(s)
      return s
    },
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
    random: () => 1,
    baseDelayMs: 100,
    maxDelayMs: 1000,
  })
  const fireTimer = () => timers.shift()!.fn()
  return { live, sockets, timers, fireTimer }
}

describe('LiveSocket', () => {
  it('follows once open, from the cursor', () => {
    const { live, sockets } = harness()
    live.start()
    live.follow(7, () => ({ from: 0 }))
    expect(sockets[0]!.sent).toEqual([])
    sockets[0]!.open()
    expect(sockets[0]!.sent).toEqual([{ op: 'follow', id: 7, from: 0 }])
  })

  it('reconnects with growing, capped backoff and re-follows from the next missing line', () => {
    const { live, sockets, timers, fireTimer } = harness()
    let next = 0
    const states: [string, boolean][] = []
    live.onState((s, r) => states.push([s, r]))
    live.start()
    live.follow(3, (): Cursor => ({ from: next }))
    sockets[0]!.open()
    next = 42 // lines 0..41 arrived
    sockets[0]!.drop()
    expect(timers.map((t) => t.ms)).toEqual([100])
    fireTimer()
    sockets[1]!.drop() // server still down
    expect(timers.map((t) => t.ms)).toEqual([200])
    fireTimer()
    sockets[2]!.drop()
    fireTimer()
    sockets[3]!.drop()
    fireTimer()
    sockets[4]!.drop()
    expect(timers.map((t) => t.ms)).toEqual([1000]) // capped
    fireTimer()
    sockets[5]!.open()
    expect(sockets[5]!.sent).toEqual([{ op: 'follow', id: 3, from: 42 }])
    expect(states.filter(([s]) => s === 'open')).toEqual([
      ['open', false],
      ['open', true],
    ])
    // the backoff starts over after a successful open
    sockets[5]!.drop()
    expect(timers.at(-1)!.ms).toBe(100)
  })

  it('does not re-follow an unfollowed or ended run', () => {
    const { live, sockets, fireTimer } = harness()
    live.start()
    live.follow(1, () => ({ from: 5 }))
    live.follow(2, () => null)
    sockets[0]!.open()
    live.unfollow(1)
    expect(sockets[0]!.sent).toEqual([
      { op: 'follow', id: 1, from: 5 },
      { op: 'unfollow', id: 1 },
    ])
    sockets[0]!.drop()
    fireTimer()
    sockets[1]!.open()
    expect(sockets[1]!.sent).toEqual([])
  })

  it('delivers parsed events and ignores junk', () => {
    const { live, sockets } = harness()
    const got: unknown[] = []
    live.onEvent((e) => got.push(e))
    live.start()
    sockets[0]!.open()
    sockets[0]!.receive({ event: 'logEnd', id: 1, total: 3, status: 'succeeded' })
    sockets[0]!.onmessage?.({ data: 'not json' } as MessageEvent)
    sockets[0]!.receive([1, 2])
    expect(got).toEqual([{ event: 'logEnd', id: 1, total: 3, status: 'succeeded' }])
  })

  it('refollow sends the cursor again (lagged)', () => {
    const { live, sockets } = harness()
    let next = 10
    live.start()
    live.follow(9, () => ({ from: next }))
    sockets[0]!.open()
    next = 8
    live.refollow(9)
    expect(sockets[0]!.sent.at(-1)).toEqual({ op: 'follow', id: 9, from: 8 })
  })

  it('stop closes and never retries', () => {
    const { live, sockets, timers } = harness()
    live.start()
    sockets[0]!.open()
    live.stop()
    expect(timers).toEqual([])
    expect(live.state).toBe('closed')
  })

  it('asks the reconnect gate after a close: retries on yes, stops on no', async () => {
    const { live, sockets, timers, fireTimer } = harness()
    const answers = [true, false]
    const asked: number[] = []
    live.setReconnectGate(async () => {
      asked.push(sockets.length)
      return answers.shift() ?? true
    })
    live.start()
    sockets[0]!.open()
    sockets[0]!.drop()
    expect(live.state).toBe('closed')
    await Promise.resolve()
    await Promise.resolve()
    expect(timers).toHaveLength(1)
    fireTimer()
    sockets[1]!.drop()
    await Promise.resolve()
    await Promise.resolve()
    expect(asked).toEqual([1, 2])
    // No: no retry is scheduled until start() again.
    expect(timers).toHaveLength(0)
    live.start()
    expect(sockets).toHaveLength(3)
  })
})
