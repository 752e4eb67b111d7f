// A sparse, bounded store of one run's output, keyed by 0-based line number.
//
// Lines come from two sources: the `/ws` live stream (`logLines`) and windows
// fetched over HTTP (`/lines`). Both write by line number, so a line received
// twice is stored once (no duplicates) and a line not received yet is a hole
// that the view fetches when it scrolls past it (no gaps). `next` is the
// stream cursor: the line number to `follow` from after a reconnect or `lagged`.

/** Lines per chunk: the unit of storage, of HTTP fetches and of eviction. */
export const CHUNK = 1000
/** Chunks kept in memory at most (~100k lines); the farthest from view go first. */
export const MAX_CHUNKS = 100

export interface Partial {
  line: number
  text: string
}

export class LogBuffer {
  private readonly chunks = new Map<number, string[]>()
  private readonly filled = new Map<number, number>()
  /** Complete lines known to exist (the virtual list's length, before a partial). */
  total = 0
  /** The next line number the live stream should send (the `follow` cursor). */
  next = 0
  /** The current unfinished line, shown last until its full version arrives. */
  partial: Partial | null = null
  /** `logEnd` arrived: every line exists on the server, nothing more will come. */
  ended = false

  get(line: number): string | undefined {
    return this.chunks.get(Math.floor(line / CHUNK))?.[line % CHUNK]
  }

  has(line: number): boolean {
    return this.get(line) !== undefined
  }

  /** Rows to render: the complete lines, then the partial line if there is one. */
  rowCount(): number {
    if (this.partial && this.partial.line >= this.total) return this.partial.line + 1
    return this.total
  }

  /** The text of row `line`: a stored line, the partial line, or undefined (not loaded). */
  row(line: number): string | undefined {
    if (line < this.total) return this.get(line)
    if (this.partial && line === this.partial.line) return this.partial.text
    return undefined
  }

  private store(from: number, lines: readonly string[]): void {
    for (let i = 0; i < lines.length; i++) {
      const line = from + i
      const c = Math.floor(line / CHUNK)
      let chunk = this.chunks.get(c)
      if (!chunk) {
        chunk = []
        this.chunks.set(c, chunk)
      }
      const slot = line % CHUNK
      if (chunk[slot] === undefined) this.filled.set(c, (this.filled.get(c) ?? 0) + 1)
      chunk[slot] = lines[i] as string
    }
    const end = from + lines.length
    if (end > this.total) this.total = end
    if (this.partial && this.partial.line < this.total) this.partial = null
  }

  /** Lines from the live stream. Moves the follow cursor past them. */
  applyStream(from: number, lines: readonly string[]): void {
    this.store(from, lines)
    const end = from + lines.length
    if (end > this.next) this.next = end
  }

  /** A window fetched over HTTP; `total` is the server's count at that moment. */
  applyPage(from: number, lines: readonly string[], total: number): void {
    this.store(from, lines)
    if (total > this.total) this.total = total
  }

  applyPartial(line: number, text: string): void {
    if (line < this.total) return
    this.partial = { line, text }
  }

  applyEnd(total: number): void {
    this.ended = true
    if (total > this.total) this.total = total
    if (total > this.next) this.next = total
    this.partial = null
  }

  /** `lagged`: the server stopped streaming at `next`; follow again from there. */
  applyLagged(next: number): number {
    this.next = Math.min(this.next, next)
    return this.next
  }

  /** Whether every line of chunk `c` that exists (below `total`) is stored. */
  chunkLoaded(c: number): boolean {
    const start = c * CHUNK
    const want = Math.min(CHUNK, this.total - start)
    if (want <= 0) return true
    return (this.filled.get(c) ?? 0) >= want
  }

  /** The chunks overlapping rows [start, end) that still have holes. */
  missingChunks(start: number, end: number): number[] {
    const last = Math.min(end, this.total) - 1
    const out: number[] = []
    if (last < start) return out
    for (let c = Math.floor(Math.max(0, start) / CHUNK); c <= Math.floor(last / CHUNK); c++) {
      if (!this.chunkLoaded(c)) out.push(c)
    }
    return out
  }

  /** Bounds memory: drops the chunks farthest from `focusLine` beyond MAX_CHUNKS. */
  trim(focusLine: number, max = MAX_CHUNKS): void {
    if (this.chunks.size <= max) return
    const focus = Math.floor(focusLine / CHUNK)
    const tail = Math.floor(Math.max(0, this.total - 1) / CHUNK)
    const order = [...this.chunks.keys()]
      .filter((c) => c !== focus && c !== tail)
      .sort((a, b) => Math.abs(b - focus) - Math.abs(a - focus))
    for (const c of order) {
      if (this.chunks.size <= max) break
      this.chunks.delete(c)
      this.filled.delete(c)
    }
  }

  /** Number of chunks held (for tests and memory checks). */
  chunkCount(): number {
    return this.chunks.size
  }
}
