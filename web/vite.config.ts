import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The binary `npm run dev` talks to (override: TESTSCHEDULER_DEV_BACKEND=http://host:port).
const backend = process.env.TESTSCHEDULER_DEV_BACKEND ?? 'http://127.0.0.1:8000'

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
    rolldownOptions: {
      output: {
        // Vue, the router and Pinia in one long-cached chunk; the log view's
        // libraries stay in its own lazy chunk.
        codeSplitting: {
          groups: [{ name: 'vue', test: /node_modules[\\/](@vue|vue|vue-router|pinia)[\\/]/ }],
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      '/ws': {
        target: backend,
        ws: true,
        changeOrigin: true,
        // The server refuses a foreign Origin on /ws; the dev server is one,
        // so present the backend's own origin (or start it with --allowed-origin).
        configure: (proxy) => {
          proxy.on('proxyReqWs', (req) => req.setHeader('origin', backend))
        },
      },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
})
