// Short local times for the environments page and a queued run's place.

function pad(n: number): string {
  return String(n).padStart(2, '0')
}

/** `14:32` today, `Dec 3 14:32` on another day; the raw text when it is no time. */
export function clock(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`
  const today = new Date(now)
  if (d.toDateString() === today.toDateString()) return hm
  return `${d.toLocaleDateString('en', { month: 'short', day: 'numeric' })} ${hm}`
}

/** The name the queue form remembers, for forms on other pages. */
export const NAME_KEY = 'testscheduler.username'

export function storedName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? ''
  } catch {
    return ''
  }
}

export function rememberName(name: string): void {
  try {
    localStorage.setItem(NAME_KEY, name)
  } catch {
    // Private mode: the name is just not remembered.
  }
}
