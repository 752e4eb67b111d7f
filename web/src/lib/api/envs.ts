// Environments, their queues and reservations: types and calls (PRODUCT.md,
// "Environments and the queue").
import { request } from './client'

export const ENV_STATES = ['free', 'busy', 'reserved', 'disabled'] as const
export type EnvState = (typeof ENV_STATES)[number]

export interface RunHolder {
  kind: 'run'
  run_id: number
  username: string
  since: string
}

export interface ReservationHolder {
  kind: 'reservation'
  reservation_id: number
  username: string
  since: string
  until: string
  note: string | null
}

export type EnvHolder = RunHolder | ReservationHolder

/** One environment as `GET /api/envs` lists it and `envChanged` sends it. */
export interface EnvView {
  id: number
  name: string
  labels: string[]
  description: string
  state: EnvState
  run_id: number | null
  holder: EnvHolder | null
  queue_length: number
  disabled_reason: string | null
}

/** One waiting item of an environment's queue, in order. */
export interface QueueItem {
  kind: 'run' | 'reservation'
  run_id?: number
  reservation_id?: number
  username: string
  path?: string
  priority?: number
  labels?: string[] | null
  queue_position?: number | null
  eta?: string | null
  created_at?: string
  note?: string | null
  /** A queued reservation: how long it will hold the environment. */
  duration_s?: number
}

/** `GET /api/envs/{id}`: the environment and its queue. */
export interface EnvDetail extends EnvView {
  queue: QueueItem[]
}

export type ReservationStatus = 'active' | 'queued' | 'ended'

export interface Reservation {
  id: number
  env_id: number
  username: string
  note: string | null
  status: ReservationStatus
  since: string | null
  until: string | null
}

export interface NewReservation {
  username: string
  duration_s: number | string
  note?: string
  wait?: boolean
}

export const envsApi = {
  list(): Promise<EnvView[]> {
    return request('GET', '/api/envs')
  },
  get(id: number): Promise<EnvDetail> {
    return request('GET', `/api/envs/${id}`)
  },
  disable(id: number, reason: string): Promise<EnvView> {
    return request('POST', `/api/envs/${id}/disable`, { reason })
  },
  enable(id: number): Promise<EnvView> {
    return request('POST', `/api/envs/${id}/enable`)
  },
  reserve(id: number, body: NewReservation): Promise<Reservation> {
    return request('POST', `/api/envs/${id}/reservations`, body)
  },
  extend(rid: number, until: string): Promise<Reservation> {
    return request('PATCH', `/api/reservations/${rid}`, { until })
  },
  release(rid: number): Promise<Reservation> {
    return request('DELETE', `/api/reservations/${rid}`)
  },
}
