// Environments: their states and holders (`GET /api/envs`, kept live by
// `envChanged`), the queues of those opened on `/envs` (`GET /api/envs/{id}`),
// and the actions on them (disable, enable, reserve, release).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { useLiveStore } from './live'
import {
  envsApi,
  type EnvDetail,
  type EnvView,
  type NewReservation,
  type Reservation,
} from '../lib/api/envs'

function byId(a: EnvView, b: EnvView): number {
  return a.id - b.id
}

export const useEnvsStore = defineStore('envs', () => {
  const envs = ref<EnvView[]>([])
  const loaded = ref(false)
  /** The list could not be had (first load failed): the form takes a number instead. */
  const failed = ref(false)
  const loadError = ref<string | null>(null)
  /** Queues of the environments whose queue is shown, by id. */
  const details = ref<Record<number, EnvDetail>>({})
  const open = new Set<number>()
  /** Views sent live while a list request was under way: they are newer than its answer. */
  let during: Map<number, EnvView> | null = null
  let loading: Promise<void> | null = null
  let detailTimer: ReturnType<typeof setTimeout> | null = null
  const stale = new Set<number>()

  function put(view: EnvView): void {
    const list = envs.value
    const at = list.findIndex((e) => e.id === view.id)
    if (at === -1) envs.value = [...list, view].sort(byId)
    else list[at] = view
  }

  async function fetchList(): Promise<void> {
    during = new Map()
    try {
      const list = await envsApi.list()
      for (const [id, view] of during) {
        const at = list.findIndex((e) => e.id === id)
        if (at !== -1) list[at] = view
      }
      envs.value = list.sort(byId)
      loaded.value = true
      failed.value = false
      loadError.value = null
    } catch (e) {
      loadError.value = e instanceof Error ? e.message : String(e)
      if (!loaded.value) failed.value = true
    } finally {
      during = null
    }
  }

  /** (Re)loads the list; calls made while one load is under way share it. */
  function load(): Promise<void> {
    loading ??= fetchList().finally(() => (loading = null))
    return loading
  }

  async function loadDetail(id: number): Promise<void> {
    try {
      const detail = await envsApi.get(id)
      if (open.has(id)) details.value[id] = detail
      put(stripQueue(detail))
    } catch {
      // The queue shown stays as it was; the next change tries again.
    }
  }

  function stripQueue(detail: EnvDetail): EnvView {
    const { queue: _queue, ...view } = detail
    void _queue
    return view
  }

  /** Shows (`true`) or hides the queue of environment `id`. */
  function watchQueue(id: number, on: boolean): void {
    if (on) {
      open.add(id)
      void loadDetail(id)
    } else {
      open.delete(id)
      delete details.value[id]
    }
  }

  /** Refetches the open queues in `ids` (all open ones by default) soon, once. */
  function refreshQueues(ids: Iterable<number> = open): void {
    for (const id of ids) if (open.has(id)) stale.add(id)
    if (stale.size === 0 || detailTimer !== null) return
    detailTimer = setTimeout(() => {
      detailTimer = null
      const todo = [...stale]
      stale.clear()
      for (const id of todo) void loadDetail(id)
    }, 250)
  }

  /** `envChanged`: the newest view of one environment. */
  function apply(view: EnvView): void {
    during?.set(view.id, view)
    put(view)
    refreshQueues([view.id])
  }

  /** A run changed: the positions and ETAs in the open queues may have moved. */
  function changed(): void {
    refreshQueues()
  }

  async function disable(id: number, reason: string): Promise<EnvView> {
    const view = await envsApi.disable(id, reason)
    put(view)
    return view
  }

  async function enable(id: number): Promise<EnvView> {
    const view = await envsApi.enable(id)
    put(view)
    return view
  }

  async function reserve(id: number, body: NewReservation): Promise<Reservation> {
    const reservation = await envsApi.reserve(id, body)
    void loadDetail(id)
    return reservation
  }

  async function release(envId: number, reservationId: number): Promise<void> {
    await envsApi.release(reservationId)
    void loadDetail(envId)
  }

  /** Moves a reservation's end to `until` (RFC 3339). */
  async function extend(envId: number, reservationId: number, until: string): Promise<void> {
    await envsApi.extend(reservationId, until)
    void loadDetail(envId)
  }

  const live = useLiveStore()
  live.on(['envChanged'], (event) => apply(event.env as EnvView))

  return {
    extend,
    envs,
    loaded,
    failed,
    loadError,
    details,
    load,
    apply,
    changed,
    watchQueue,
    disable,
    enable,
    reserve,
    release,
  }
})
