// Writes deterministic .gz and .br siblings for every text file in ../assets
// above MIN_BYTES, so the server can hand out pre-compressed bytes.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, dirname, extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, gzipSync, constants } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets')
const MIN_BYTES = 1024
const TEXT = new Set([
  '.html',
  '.js',
  '.mjs',
  '.css',
  '.svg',
  '.json',
  '.txt',
  '.map',
  '.webmanifest',
])

function* walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) yield* walk(path)
    else yield path
  }
}

let count = 0
for (const path of walk(root)) {
  if (!TEXT.has(extname(path))) continue
  const data = readFileSync(path)
  if (data.length < MIN_BYTES) continue
  // gzipSync writes mtime 0 and no file name: the output depends on the input only.
  writeFileSync(`${path}.gz`, gzipSync(data, { level: 9 }))
  writeFileSync(
    `${path}.br`,
    brotliCompressSync(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    }),
  )
  count += 1
}
console.log(`compressed ${count} files in ${root}`)
