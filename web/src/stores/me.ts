// Who is signed in (`GET /api/me`) and what their role lets them do.
//
// Under `--auth none` everything is allowed, as before accounts. With
// accounts on (`local`, `proxy`): a viewer reads; a runner queues, cancels
// and re-runs their own runs and reserves environments (and releases their
// own reservations); an admin does everything (PRODUCT.md "Accounts").
// The server decides; these answers only hide buttons that would get a 403.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { ApiError } from '../lib/api/client'
import { authApi, type AuthMode, type Me, type Role } from '../lib/api/auth'

export type Action =
  | 'queue'
  | 'cancel'
  | 'rerun'
  | 'reserve'
  | 'release'
  | 'disable'
  | 'enable'
  | 'manageUsers'
  | 'audit'
  | 'tokens'

/** Actions on something of one user's: a runner may do them to their own only. */
const OWN_ONLY: ReadonlySet<Action> = new Set(['cancel', 'rerun', 'release'])
const RUNNER: ReadonlySet<Action> = new Set(['queue', 'reserve', 'tokens', ...OWN_ONLY])
const VIEWER: ReadonlySet<Action> = new Set(['tokens'])

/** May `me` do `action` (to a thing of `owner`'s, for cancel, re-run and release)? */
export function allowed(me: Me | null, action: Action, owner?: string | null): boolean {
  if (!me) return false
  // Tokens belong to accounts: under `none` there is nobody to issue one to.
  if (action === 'tokens') return me.username !== null
  if (me.auth === 'none' || me.role === 'admin') return true
  if (me.username === null) return false
  const set = me.role === 'runner' ? RUNNER : VIEWER
  if (!set.has(action)) return false
  return !OWN_ONLY.has(action) || (owner != null && owner === me.username)
}

/** A return path after login: an app path, never another site or the login page itself. */
export function safeReturnPath(value: unknown): string {
  const path = Array.isArray(value) ? value[0] : value
  if (typeof path !== 'string' || !path.startsWith('/') || path.startsWith('//')) return '/'
  if (path === '/login' || path.startsWith('/login?') || path.startsWith('/login#')) return '/'
  return path
}

/** A 401 from `/api/me` that says no account exists yet (the server's first start). */
export function noAccountsYet(error: ApiError): boolean {
  const body = error.body as Record<string, unknown>
  return body.setup_required === true || /no account exists yet/i.test(error.body.message)
}

const NO_ACCOUNTS: Me = { username: null, role: 'admin', auth: 'none' }

export const useMeStore = defineStore('me', () => {
  const me = ref<Me | null>(null)
  /** The server answered `/api/me` with 401: accounts are on and nobody is signed in. */
  const unauthenticated = ref(false)
  /** The server could not be asked (down, offline); the pages say so themselves. */
  const loadError = ref<string | null>(null)
  const loaded = ref(false)
  /** The server has no accounts yet: the login page says how to create the first admin. */
  const firstRun = ref(false)
  let pending: Promise<void> | null = null
  let rechecking: Promise<void> | null = null

  const mode = computed<AuthMode | null>(() => me.value?.auth ?? null)
  /** Accounts are on: a mode other than `none`, or a 401 (which `none` never answers). */
  const accounts = computed(
    () => unauthenticated.value || (mode.value !== null && mode.value !== 'none'),
  )
  const name = computed(() => me.value?.username ?? null)
  const role = computed<Role | null>(() => me.value?.role ?? null)
  const signedIn = computed(
    () => me.value !== null && (mode.value === 'none' || name.value !== null),
  )
  const isAdmin = computed(() => signedIn.value && role.value === 'admin')

  async function fetchMe(): Promise<void> {
    try {
      set(await authApi.me())
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signedOut()
        firstRun.value = noAccountsYet(e)
      } else if (e instanceof ApiError && e.status === 404) {
        set(NO_ACCOUNTS) // a server from before accounts
      } else loadError.value = e instanceof Error ? e.message : String(e)
    } finally {
      loaded.value = true
    }
  }

  /** Loads `/api/me` once; later calls wait for the same answer. */
  function load(): Promise<void> {
    pending ??= fetchMe()
    return pending
  }

  /** Asks again when the live connection closed (a revoked session shows as a refusal
   * there); never under `--auth none`. One question at a time. */
  function recheck(): Promise<void> {
    if (mode.value === 'none') return Promise.resolve()
    rechecking ??= fetchMe().finally(() => (rechecking = null))
    return rechecking
  }

  function set(next: Me) {
    me.value = next
    unauthenticated.value = false
    loadError.value = null
    loaded.value = true
  }

  /** The server said 401: the session is gone (expired, revoked, signed out elsewhere). */
  function signedOut() {
    me.value = null
    unauthenticated.value = true
    loaded.value = true
  }

  async function login(username: string, password: string): Promise<void> {
    const reply = await authApi.login(username, password)
    set({ username: reply.username, role: reply.role, auth: mode.value ?? 'local' })
    // The mode comes only from /api/me; ask it now that the cookie is set.
    pending = fetchMe()
    await pending
  }

  async function logout(): Promise<void> {
    await authApi.logout()
    signedOut()
  }

  function can(action: Action, owner?: string | null): boolean {
    // Not known yet (loading, or the server unreachable): the server decides.
    if (me.value === null) return !unauthenticated.value
    return allowed(signedIn.value ? me.value : null, action, owner)
  }

  return {
    me,
    mode,
    accounts,
    name,
    role,
    signedIn,
    isAdmin,
    unauthenticated,
    loadError,
    loaded,
    firstRun,
    load,
    recheck,
    signedOut,
    login,
    logout,
    can,
  }
})

/** For components: `const { can } = useCan()`, then `v-if="can('cancel', run.username)"`. */
export function useCan() {
  const store = useMeStore()
  return { can: store.can, me: store }
}
