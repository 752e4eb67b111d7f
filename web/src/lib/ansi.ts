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
 * The 16 basic foreground colours, re-tuned for the log's dark background
 * (ansi_up's defaults make blue and black unreadable there).
 */
const LOG_PALETTE: Record<string, string> = {
  '0,0,0': '110,118,129',
  '187,0,0': '255,123,114',
  '0,187,0': '63,185,80',
  '187,187,0': '210,153,34',
  '0,0,187': '88,166,255',
  '187,0,187': '188,140,255',
  '0,187,187': '57,197,207',
  '85,85,85': '139,148,158',
  '255,85,85': '255,161,152',
  '0,255,0': '86,211,100',
  '255,255,85': '227,179,65',
  '85,85,255': '121,192,255',
  '255,85,255': '210,168,255',
  '85,255,255': '86,212,221',
}
const FG_RE = /([";])color:rgb\((\d+,\d+,\d+)\)/g

/**
 * Renders one line on its own: colours never leak from one line into the next
 * (lines are rendered out of order by the virtual list), HTML is always escaped.
 */
export function ansiToHtml(line: string): string {
  const text = visibleSegment(line)
  if (!text.includes(ESC)) return escapeHtml(text)
  const renderer = new AnsiUp()
  renderer.escape_html = true
  return renderer
    .ansi_to_html(text)
    .replace(FG_RE, (all, lead: string, rgb: string) =>
      LOG_PALETTE[rgb] ? `${lead}color:rgb(${LOG_PALETTE[rgb]})` : all,
    )
}

/** The line without any escape sequence (for search results and titles). */
export function stripAnsi(line: string): string {
  return visibleSegment(line).replace(ANSI_RE, '')
}

/**
 * Wraps each occurrence of `query` (case-insensitive) in the text of rendered
 * `html` with `<mark>`; tags and entities are left alone.
 */
export function markText(html: string, query: string): string {
  if (!query) return html
  const needle = escapeHtml(query).toLowerCase()
  return html
    .split(/(<[^>]*>)/)
    .map((part) => {
      if (part.startsWith('<') || !part) return part
      const lower = part.toLowerCase()
      let out = ''
      let at = 0
      for (let i = lower.indexOf(needle); i !== -1; i = lower.indexOf(needle, at)) {
        out += `${part.slice(at, i)}<mark>${part.slice(i, i + needle.length)}</mark>`
        at = i + needle.length
      }
      return out + part.slice(at)
    })
    .join('')
}
