// Turns one raw log line (ANSI escapes kept) into safe HTML with inline colour styles.
import { AnsiUp } from 'ansi_up'

const ESC = '\u001b'
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-_]/g

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#x27;',
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)
}

/**
 * What a terminal would show of a line containing lone carriage returns
 * (progress bars): the text after the last `\r` that is followed by something.
 */
export function visibleSegment(line: string): string {
  if (!line.includes('\r')) return line
  const parts = line.split('\r')
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i]
    if (part) return part
  }
  return ''
}

/**
 * Renders one line on its own: colours never leak from one line into the next
 * (lines are rendered out of order by the virtual list), HTML is always escaped.
 */
export function ansiToHtml(line: string): string {
  const text = visibleSegment(line)
  if (!text.includes(ESC)) return escapeHtml(text)
  const renderer = new AnsiUp()
  renderer.escape_html = true
  return renderer.ansi_to_html(text)
}

/** The line without any escape sequence (for search results and titles). */
export function stripAnsi(line: string): string {
  return visibleSegment(line).replace(ANSI_RE, '')
}
