// Sends a visitor without a session to `/login?next=…`, and a signed-in one
// (or anyone under `--auth none`) away from the login page. A session that
// ends while the page is open (a 401 from any call, or `/api/me` asked again
// after the live connection was refused) leads to the login page as well.
import { watch } from 'vue'
import type { Router } from 'vue-router'
import { setUnauthenticatedHandler } from '../../lib/api/client'
import { safeReturnPath, useMeStore } from '../../stores/me'

export function installAuthGuard(router: Router): void {
  const me = useMeStore()
  router.beforeEach(async (to) => {
    await me.load()
    if (to.name === 'login') return me.signedIn ? safeReturnPath(to.query.next) : true
    if (me.unauthenticated) return { name: 'login', query: { next: to.fullPath } }
    return true
  })
  setUnauthenticatedHandler(() => me.signedOut())
  watch(
    () => me.unauthenticated,
    (gone) => {
      const here = router.currentRoute.value
      if (gone && here.name !== 'login' && here.matched.length > 0)
        void router.push({ name: 'login', query: { next: here.fullPath } })
    },
  )
}
