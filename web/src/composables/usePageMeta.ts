// Page title and favicon, e.g. showing a run's status in the browser tab.
import { onBeforeUnmount, watchEffect } from 'vue'
import type { RunStatus } from '../lib/api/types'
import { statusFavicon } from '../lib/status'

const DEFAULT_ICON = '/favicon.svg'
const APP = 'testscheduler'

function iconLink(): HTMLLinkElement {
  let link = document.querySelector<HTMLLinkElement>('link[rel="icon"]')
  if (!link) {
    link = document.createElement('link')
    link.rel = 'icon'
    document.head.appendChild(link)
  }
  return link
}

export function setFavicon(status: RunStatus | null): void {
  const link = iconLink()
  const href = status ? statusFavicon(status) : DEFAULT_ICON
  if (link.getAttribute('href') !== href) link.setAttribute('href', href)
}

/** Keeps `document.title` (and the favicon) in step with the getter; restores them after. */
export function usePageMeta(get: () => { title: string; status?: RunStatus | null }): void {
  watchEffect(() => {
    const { title, status } = get()
    document.title = title ? `${title} · ${APP}` : APP
    setFavicon(status ?? null)
  })
  onBeforeUnmount(() => {
    document.title = APP
    setFavicon(null)
  })
}
