// The stores' imports point one way: no store reaches itself through others.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const DIR = import.meta.dirname

function storeImports(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of readdirSync(DIR)) {
    if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue
    const src = readFileSync(join(DIR, file), 'utf8')
    const deps = [...src.matchAll(/^import [^;]*? from '\.\/([\w-]+)'/gm)].map((m) => m[1]!)
    graph.set(file.replace(/\.ts$/, ''), deps)
  }
  return graph
}

/** One cycle in the graph as a path, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>()
  const walk = (node: string, path: string[]): string[] | null => {
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    if (state.get(node) === 'done') return null
    state.set(node, 'open')
    for (const dep of graph.get(node) ?? []) {
      const cycle = walk(dep, [...path, node])
      if (cycle) return cycle
    }
    state.set(node, 'done')
    return null
  }
  for (const node of graph.keys()) {
    const cycle = walk(node, [])
    if (cycle) return cycle
  }
  return null
}

describe('store dependencies', () => {
  it('have no cycle', () => {
    const graph = storeImports()
    expect(graph.get('logs')).toContain('live')
    expect(findCycle(graph)).toBeNull()
  })

  it('the cycle finder finds one', () => {
    expect(
      findCycle(
        new Map([
          ['a', ['b']],
          ['b', ['a']],
        ]),
      ),
    ).toEqual(['a', 'b', 'a'])
  })

  it('live, the connection, imports no store', () => {
    expect(storeImports().get('live')).toEqual([])
  })
})
