import { describe, expect, it } from 'vitest'
import { ansiToHtml, escapeHtml, markText, stripAnsi, visibleSegment } from './ansi'

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
