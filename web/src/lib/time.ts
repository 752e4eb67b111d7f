// Formatting of RFC 3339 timestamps and durations for display.

function pad(n: number): string {
  return String(n).padStart(2, '0')
}

/** `2026-11-25 08:24:03` in the browser's time zone; an em dash for nothing. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  )
}

/** `1h 02m 03s`, `2m 05s`, `4.2s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—'
  const seconds = ms / 1000
  if (seconds < 10) return `${seconds.toFixed(1)}s`
  const total = Math.floor(seconds)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`
  if (m > 0) return `${m}m ${pad(s)}s`
  return `${s}s`
}

/** How long a run took (or has taken so far, given `now`). */
export function runDuration(
  startedAt: string | null | undefined,
  finishedAt: string | null | undefined,
  now: number,
): number | null {
  if (!startedAt) return null
  const start = Date.parse(startedAt)
  const end = finishedAt ? Date.parse(finishedAt) : now
  if (Number.isNaN(start) || Number.isNaN(end)) return null
  return Math.max(0, end - start)
}
