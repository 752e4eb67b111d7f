// What each run status looks like: label, colour, favicon.
import type { RunStatus } from './api/types'

export const ACTIVE_STATUSES: readonly RunStatus[] = ['queued', 'created', 'running']

export function isActive(status: RunStatus): boolean {
  return ACTIVE_STATUSES.includes(status)
}

const COLOURS: Record<RunStatus, string> = {
  queued: '#0891b2',
  created: '#6b7280',
  running: '#2563eb',
  succeeded: '#16a34a',
  failed: '#dc2626',
  unknown: '#a855f7',
  cancelled: '#d97706',
  timeout: '#ea580c',
}

export function statusColour(status: RunStatus | undefined): string {
  return (status && COLOURS[status]) || '#6b7280'
}

const GLYPHS: Record<RunStatus, string> = {
  queued:
    '<path d="M10 12h12M10 16h12M10 20h8" stroke="#fff" stroke-width="2.5" stroke-linecap="round"/>',
  created: '<circle cx="16" cy="16" r="5" fill="#fff"/>',
  running: '<path d="M12 9l11 7-11 7z" fill="#fff"/>',
  succeeded:
    '<path d="M9 16.5l4.5 4.5L23 11.5" fill="none" stroke="#fff" stroke-width="3.5" stroke-linecap="round" stroke-linejoin="round"/>',
  failed:
    '<path d="M11 11l10 10M21 11L11 21" stroke="#fff" stroke-width="3.5" stroke-linecap="round"/>',
  unknown:
    '<text x="16" y="22" text-anchor="middle" font-family="sans-serif" font-size="17" font-weight="bold" fill="#fff">?</text>',
  cancelled: '<path d="M10 16h12" stroke="#fff" stroke-width="3.5" stroke-linecap="round"/>',
  timeout:
    '<path d="M16 9v7l4 3" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/>',
}

/** An SVG favicon (as a data: URL) showing the status; no request is made for it. */
export function statusFavicon(status: RunStatus): string {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
    `<rect width="32" height="32" rx="8" fill="${statusColour(status)}"/>${GLYPHS[status]}</svg>`
  return `data:image/svg+xml,${encodeURIComponent(svg)}`
}
