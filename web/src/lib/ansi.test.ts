import { describe, expect, it } from 'vitest'
import {
  ansiToHtml,
  escapeHtml,
  isSafeUrl,
  markText,
  splitLine,
  stripAnsi,
  visibleSegment,
} from './ansi'

describe('ansiToHtml', () => {
  it('renders SGR colours as inline styles, never as raw escape codes', () => {
    const html = ansiToHtml('\u001b[31mred\u001b[0m plain')
    expect(html).toContain('<span style="color:rgb(255,123,114)">red</span>')
    expect(html).toContain(' plain')
    expect(html).not.toContain('\u001b')
    expect(html).not.toContain('[31m')
  })

  it('renders bold and bright colours', () => {
    const html = ansiToHtml('\u001b[1;32mPASSED\u001b[0m')
    expect(html).toMatch(/font-weight:bold/)
    expect(html).toMatch(/;color:rgb\(63,185,80\)/)
  })

  it('keeps 256-colour and true-colour values, and backgrounds, as they are', () => {
    expect(ansiToHtml('\u001b[38;2;1;2;3mx')).toContain('color:rgb(1,2,3)')
    expect(ansiToHtml('\u001b[41mx')).toContain('background-color:rgb(187,0,0)')
  })

  it('escapes HTML in plain and coloured lines', () => {
    expect(ansiToHtml('<script>alert(1)</script>')).toBe('&lt;script&gt;alert(1)&lt;/script&gt;')
    const coloured = ansiToHtml('\u001b[33m<img src=x onerror=alert(1)>\u001b[0m')
    expect(coloured).not.toContain('<img')
    expect(coloured).toContain('&lt;img')
  })

  it('does not carry an open colour into the next line', () => {
    ansiToHtml('\u001b[31mopen red without reset')
    expect(ansiToHtml('next line')).toBe('next line')
  })

  it('does not carry an incomplete escape into the next line', () => {
    ansiToHtml('cut \u001b[3')
    expect(ansiToHtml('1mnot red')).toBe('1mnot red')
  })

  it('drops non-colour control sequences', () => {
    expect(ansiToHtml('\u001b[2Kcleared')).toBe('cleared')
  })
})

// Every kind of sequence a test may print; none may leave a trace in the text.
const ESC = '\u001b'
const ST = `${ESC}\\`
const BEL = '\u0007'

describe('escape sequences other than colours', () => {
  const cases: [string, string][] = [
    ['OSC 0 (window title) ended by BEL', `a${ESC}]0;title${BEL}b`],
    ['OSC 2 ended by ST', `a${ESC}]2;title${ST}b`],
    ['OSC 52 (clipboard)', `a${ESC}]52;c;aGVsbG8=${BEL}b`],
    ['OSC 133 (shell prompt marks)', `a${ESC}]133;A${ST}b`],
    ['DCS (XTGETTCAP)', `a${ESC}P+q544e${ST}b`],
    ['DCS with BEL inside, up to ST', `a${ESC}Pq#0;2;0;0;0${BEL}~-${ST}b`],
    ['SOS', `a${ESC}Xstring${ST}b`],
    ['PM', `a${ESC}^privacy${ST}b`],
    ['APC', `a${ESC}_Gf=100;payload${ST}b`],
    ['CSI erase line', `a${ESC}[2Kb`],
    ['CSI cursor movement', `a${ESC}[10;20Hb`],
    ['CSI private mode (hide cursor)', `a${ESC}[?25lb`],
    ['CSI with an intermediate', `a${ESC}[0 qb`],
    ['CSI colon-form SGR', `a${ESC}[38:2::1:2:3mb`],
    ['nF: designate character set', `a${ESC}(Bb`],
    ['nF with two intermediates', `a${ESC}$)Ab`],
    ['lone ESC + one char (save cursor)', `a${ESC}7b`],
    ['lone ESC + one char (keypad)', `a${ESC}=b`],
    ['C1 string terminator', `a${ESC}]0;t\u009cb`],
    ['bare control characters', `a${BEL}\u0008\u0000\u007f\u0085b`],
  ]
  it.each(cases)('%s is dropped whole', (_name, line) => {
    expect(ansiToHtml(line)).toBe('ab')
    expect(stripAnsi(line)).toBe('ab')
  })

  it('keeps colours around dropped sequences', () => {
    const html = ansiToHtml(`${ESC}]0;t${BEL}${ESC}[31mred${ESC}P1$r${ST}${ESC}[0m`)
    expect(html).toBe('<span style="color:rgb(255,123,114)">red</span>')
  })

  it('drops an unterminated string sequence to the end of the line', () => {
    expect(ansiToHtml(`shown${ESC}]0;never ended`)).toBe('shown')
    expect(ansiToHtml(`shown${ESC}Pno terminator`)).toBe('shown')
    expect(ansiToHtml(`shown${ESC}`)).toBe('shown')
    expect(ansiToHtml(`shown${ESC}[12`)).toBe('shown')
  })

  it('drops a CSI broken by a control character, and keeps the text after it', () => {
    expect(ansiToHtml(`a${ESC}[1;2\u0007b`)).toBe('ab')
    expect(ansiToHtml(`a${ESC}[1${ESC}[31mb`)).toBe(
      'a<span style="color:rgb(255,123,114)">b</span>',
    )
  })

  it('lets a new escape end an OSC that lacks its terminator', () => {
    expect(ansiToHtml(`a${ESC}]0;t${ESC}[1mb`)).toBe('a<span style="font-weight:bold">b</span>')
  })

  it('keeps tabs', () => {
    expect(ansiToHtml(`a\tb${ESC}7`)).toBe('a\tb')
  })
})

describe('OSC 8 hyperlinks', () => {
  const link = (url: string, text: string, end = ST) =>
    `${ESC}]8;;${url}${end}${text}${ESC}]8;;${end}`

  it('renders an https link as a safe anchor', () => {
    const html = ansiToHtml(`see ${link('https://example.com/a?b=1&c=2', 'the docs')} now`)
    expect(html).toBe(
      'see <a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">the docs</a> now',
    )
  })

  it('renders http links ended by BEL, with params, and colours inside', () => {
    const html = ansiToHtml(`${ESC}]8;id=x;http://h/${BEL}${ESC}[32mok${ESC}[0m${ESC}]8;;${BEL}!`)
    expect(html).toBe(
      '<a href="http://h/" rel="noopener noreferrer" target="_blank"><span style="color:rgb(63,185,80)">ok</span></a>!',
    )
  })

  it('keeps the text of a link whose scheme is refused, as plain text', () => {
    for (const url of [
      'javascript:alert(1)',
      'file:///etc/passwd',
      'data:text/html,x',
      'not a url',
    ]) {
      const html = ansiToHtml(`[${link(url, 'click me')}]`)
      expect(html).toBe('[click me]')
    }
  })

  it('escapes a hostile URL and text', () => {
    const html = ansiToHtml(link('https://x/"><script>', '<b>hi</b>'))
    expect(html).not.toContain('<script')
    expect(html).not.toContain('<b>')
    expect(html).toContain('href="https://x/&quot;&gt;&lt;script&gt;"')
    expect(html).toContain('&lt;b&gt;hi&lt;/b&gt;')
  })

  it('keeps the text of a link with non-ASCII text and an unclosed link', () => {
    expect(ansiToHtml(`${ESC}]8;;ftp://x${ST}héllo ✓`)).toBe('héllo ✓')
    expect(stripAnsi(link('https://e.x', 'label'))).toBe('label')
  })

  it('splits a line into segments by link', () => {
    expect(splitLine(`a${link('https://e.x', 'b')}c`)).toEqual([
      { ansi: 'a', url: null },
      { ansi: 'b', url: 'https://e.x' },
      { ansi: 'c', url: null },
    ])
  })

  it('accepts only absolute http and https URLs', () => {
    expect(isSafeUrl('https://e.x/p')).toBe(true)
    expect(isSafeUrl('HTTP://E.X')).toBe(true)
    expect(isSafeUrl('javascript:alert(1)')).toBe(false)
    expect(isSafeUrl('/relative')).toBe(false)
  })
})

describe('visibleSegment', () => {
  it('keeps what a terminal shows after carriage returns', () => {
    expect(visibleSegment('10%\r50%\r100%')).toBe('100%')
    expect(visibleSegment('done\r')).toBe('done')
    expect(visibleSegment('plain')).toBe('plain')
  })
})

describe('stripAnsi', () => {
  it('removes escape sequences', () => {
    expect(stripAnsi('\u001b[1;31mFAILED\u001b[0m x')).toBe('FAILED x')
  })
})

describe('escapeHtml', () => {
  it('escapes the five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe(
      '&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;',
    )
  })
})

describe('markText', () => {
  it('marks every occurrence in text, case-insensitively, never inside tags', () => {
    const html = ansiToHtml('\u001b[31mError\u001b[0m: error <span> ERROR')
    const marked = markText(html, 'error')
    expect(marked.match(/<mark>/g)).toHaveLength(3)
    expect(marked).toContain('<span style="color:rgb(255,123,114)"><mark>Error</mark></span>')
    expect(marked).toContain('&lt;span&gt;')
    expect(markText(html, 'span')).toBe(html.replace('&lt;span&gt;', '&lt;<mark>span</mark>&gt;'))
  })

  it('matches text that contains HTML specials', () => {
    expect(markText(escapeHtml('a < b'), '< b')).toBe('a <mark>&lt; b</mark>')
    expect(markText('plain', '')).toBe('plain')
  })
})
