// Turns one raw log line (ANSI escapes kept) into safe HTML with inline colour styles.
//
// A small pre-pass (`splitLine`) reads every escape sequence a test may print
// (ECMA-48: CSI, OSC ended by BEL or ST, DCS/SOS/PM/APC up to ST, nF and lone
// two-character escapes) and stray control characters. Only SGR (colour)
// sequences are passed on to ansi_up, which renders them; OSC 8 hyperlinks
// become links of their own (http/https only) or plain text; everything else
// is dropped, so no part of a sequence is ever shown as text.
import { AnsiUp } from 'ansi_up'

const ESC = '\u001b'
const BEL = '\u0007'

/** A line cut into runs of text-with-colours, each inside a hyperlink or not. */
export interface Segment {
  /** Text and SGR sequences only: what ansi_up is given. */
  ansi: string
  /** The OSC 8 target this text is the label of, or null. */
  url: string | null
}

// Printable text up to the next escape or control character (tab is text).
// eslint-disable-next-line no-control-regex
const TEXT_RE = /[^\u0000-\u0008\u000a-\u001f\u007f-\u009f]+/y
// eslint-disable-next-line no-control-regex
const CSI_RE = /\u001b\[([0-?]*)([ -/]*)([@-~])/y
// eslint-disable-next-line no-control-regex
const CSI_PREFIX_RE = /\u001b\[[0-?]*[ -/]*/y
// nF escapes (e.g. `ESC ( B`, designate a character set): intermediates, then a final.
// eslint-disable-next-line no-control-regex
const NF_RE = /\u001b[ -/]+[0-~]/y
const SGR_PARAMS_RE = /^[0-9;]*$/

/** Where the string sequence starting at `from` ends (after its terminator), or -1. */
function stringEnd(
  line: string,
  from: number,
  belEnds: boolean,
): { end: number; body: string } | null {
  for (let i = from; i < line.length; i++) {
    const c = line[i]
    if (c === BEL && belEnds) return { end: i + 1, body: line.slice(from, i) }
    if (c === '\u009c') return { end: i + 1, body: line.slice(from, i) }
    if (c === ESC) {
      if (line[i + 1] === '\\') return { end: i + 2, body: line.slice(from, i) }
      // A new escape aborts the string (as terminals do); it is read next.
      return { end: i, body: line.slice(from, i) }
    }
  }
  return null
}

/**
 * Cuts a line into segments: the text, with its SGR sequences kept, grouped
 * by OSC 8 hyperlink. Every other sequence and control character is dropped;
 * a string sequence left open at the end of the line drops the rest of it
 * (a terminal would swallow it too).
 */
export function splitLine(line: string): Segment[] {
  const segments: Segment[] = []
  let current: Segment = { ansi: '', url: null }
  const startLink = (url: string | null) => {
    if (current.ansi) segments.push(current)
    current = { ansi: '', url }
  }
  let i = 0
  while (i < line.length) {
    TEXT_RE.lastIndex = i
    const text = TEXT_RE.exec(line)
    if (text) {
      current.ansi += text[0]
      i += text[0].length
      continue
    }
    if (line[i] !== ESC) {
      i++ // a lone control character (BEL, backspace, C1…): shown as nothing
      continue
    }
    const kind = line[i + 1]
    if (kind === undefined) break
    if (kind === '[') {
      CSI_RE.lastIndex = i
      const csi = CSI_RE.exec(line)
      if (!csi) {
        // Cut short (end of line) or broken by a control character: drop what
        // was read of it; the character that broke it is read next.
        CSI_PREFIX_RE.lastIndex = i
        i += CSI_PREFIX_RE.exec(line)?.[0].length ?? 2
        continue
      }
      const [all, params, inter, final] = csi
      if (final === 'm' && !inter && SGR_PARAMS_RE.test(params ?? '')) current.ansi += all
      i += all.length
      continue
    }
    if (kind === ']' || kind === 'P' || kind === 'X' || kind === '^' || kind === '_') {
      const str = stringEnd(line, i + 2, kind === ']')
      if (!str) break
      if (kind === ']') {
        const link = /^8;[^;]*;(.*)$/s.exec(str.body)
        if (link) startLink(link[1] ? link[1] : null)
      }
      i = str.end
      continue
    }
    NF_RE.lastIndex = i
    const nf = NF_RE.exec(line)
    if (nf) {
      i += nf[0].length
      continue
    }
    i += 2 // ESC and one character (`ESC 7`, `ESC =`, `ESC M`, …)
  }
  if (current.ansi || segments.length === 0) segments.push(current)
  return segments
}

/** True for the link targets rendered as links: absolute http and https URLs. */
export function isSafeUrl(url: string): boolean {
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:'
  } catch {
    return false
  }
}

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
// eslint-disable-next-line no-control-regex
const SGR_RE = /\u001b\[[0-9;]*m/g
const FG_RE = /([";])color:rgb\((\d+,\d+,\d+)\)/g

/**
 * Renders one line on its own: colours never leak from one line into the next
 * (lines are rendered out of order by the virtual list), HTML is always escaped.
 */
export function ansiToHtml(line: string): string {
  const text = visibleSegment(line)
  // eslint-disable-next-line no-control-regex
  if (!/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(text)) return escapeHtml(text)
  const renderer = new AnsiUp()
  renderer.escape_html = true
  // One renderer for the whole line: a colour set before a link applies inside it.
  const html = splitLine(text)
    .map((seg) => {
      const inner = renderer.ansi_to_html(seg.ansi)
      if (seg.url === null || !isSafeUrl(seg.url)) return inner
      return `<a href="${escapeHtml(seg.url)}" rel="noopener noreferrer" target="_blank">${inner}</a>`
    })
    .join('')
  return html.replace(FG_RE, (all, lead: string, rgb: string) =>
    LOG_PALETTE[rgb] ? `${lead}color:rgb(${LOG_PALETTE[rgb]})` : all,
  )
}

/** The line's text without any escape sequence (for search results and titles). */
export function stripAnsi(line: string): string {
  return splitLine(visibleSegment(line))
    .map((seg) => seg.ansi.replace(SGR_RE, ''))
    .join('')
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
