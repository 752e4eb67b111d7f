import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

const backend = 'http://127.0.0.1:8000'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: '../assets',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    reportCompressedSize: false,
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      '/ws': { target: backend, ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
})
