// History-mode routes; the original app's hash links land on their new addresses.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'

const routes: RouteRecordRaw[] = [
  { path: '/', name: 'runs', component: () => import('./views/RunsView.vue') },
  {
    path: '/runs/:id(\\d+)',
    name: 'run',
    component: () => import('./views/RunView.vue'),
    props: (route) => ({ id: Number(route.params.id) }),
  },
  { path: '/envs', name: 'envs', component: () => import('./views/EnvsView.vue') },
  { path: '/tests', name: 'tests', component: () => import('./views/TestsView.vue') },
  { path: '/login', name: 'login', component: () => import('./views/LoginView.vue') },
  { path: '/tokens', name: 'tokens', component: () => import('./views/TokensView.vue') },
  { path: '/audit', name: 'audit', component: () => import('./views/AuditView.vue') },
  { path: '/tasks', redirect: '/' },
  { path: '/tasks/:id(\\d+)', redirect: (to) => `/runs/${String(to.params.id)}` },
  {
    path: '/:pathMatch(.*)*',
    name: 'not-found',
    component: () => import('./views/NotFoundView.vue'),
  },
]

/** `#/tasks` → `/`, `#/tasks/12` → `/runs/12`; null when the hash is no old-style link. */
export function legacyHashTarget(hash: string): string | null {
  if (!hash.startsWith('#/')) return null
  const path = hash.slice(1).split('?')[0] ?? ''
  const m = /^\/tasks\/(\d+)\/?$/.exec(path)
  if (m) return `/runs/${m[1]}`
  if (/^\/(tasks\/?)?$/.test(path)) return '/'
  return path
}

export function createAppRouter() {
  const target = legacyHashTarget(window.location.hash)
  if (target !== null) window.history.replaceState(null, '', target)
  return createRouter({
    history: createWebHistory('/'),
    routes,
    // `#L120` is handled by the log view, not by scrolling to an element id.
    scrollBehavior: (to, from, saved) => saved ?? (to.path !== from.path ? { top: 0 } : false),
  })
}
