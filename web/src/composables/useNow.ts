// A clock that ticks only while `active()` is true (live durations).
import { onBeforeUnmount, ref, watch } from 'vue'

export function useNow(active: () => boolean, intervalMs = 1000) {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | null = null
  const stop = () => {
    if (timer !== null) clearInterval(timer)
    timer = null
  }
  watch(
    active,
    (on) => {
      stop()
      now.value = Date.now()
      if (on) timer = setInterval(() => (now.value = Date.now()), intervalMs)
    },
    { immediate: true },
  )
  onBeforeUnmount(stop)
  return now
}
