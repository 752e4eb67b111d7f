import { describe, expect, it } from 'vitest'
import { legacyHashTarget } from './router'

describe('legacyHashTarget', () => {
  it('maps the original app links', () => {
    expect(legacyHashTarget('#/tasks')).toBe('/')
    expect(legacyHashTarget('#/tasks/')).toBe('/')
    expect(legacyHashTarget('#/')).toBe('/')
    expect(legacyHashTarget('#/tasks/12')).toBe('/runs/12')
  })

  it('leaves line anchors and plain pages alone', () => {
    expect(legacyHashTarget('#L120')).toBeNull()
    expect(legacyHashTarget('')).toBeNull()
  })
})
