// TypeScript mirrors of the server's DTOs (see PRODUCT.md, "Contract").

export const RUN_STATUSES = [
  'queued',
  'created',
  'running',
  'succeeded',
  'failed',
  'unknown',
  'cancelled',
  'timeout',
] as const

export type RunStatus = (typeof RUN_STATUSES)[number]

/** A run, exactly as `GET /api/testruns/{id}` returns it. */
export interface Run {
  id: number
  username: string
  created_at: string
  /** Null while a label run waits for one of the environments that fit. */
  env_id: number | null
  path: string
  status: RunStatus
  logs: boolean
  priority?: number
  labels?: string[] | null
  /** 1 = next, while `queued`. */
  queue_position?: number | null
  /** RFC 3339 estimated start while `queued`. */
  eta?: string | null
  started_at?: string | null
  finished_at?: string | null
  exit_code?: number | null
  timeout_s?: number | null
  worker?: string | null
}

export interface NewRun {
  username: string
  env_id?: number | string
  path: string
  timeout_s?: number
  wait?: boolean
  priority?: number | string
  labels?: string[]
  queue_timeout_s?: number
}

/** `{"message", "errors"?, "code", ...}`: every error body of the API. */
export interface ApiErrorBody {
  message: string
  errors?: Record<string, string[]>
  code?: string
  next?: number
}

export interface Env {
  id: number
  run_id: number | null
}

export interface Worker {
  id: string
  host: string
  slots: number
  running: number[]
  last_seen: string
}

export interface LinesPage {
  id: number
  from: number
  total: number
  lines: string[]
}

export interface SearchMatch {
  line: number
  text: string
}

export interface SearchResult {
  id: number
  matches: SearchMatch[]
  more: boolean
}

export interface RunFilters {
  user?: string
  env_id?: string
  status?: string
  path?: string
}

/** Server → client frames on `/ws`. */
export type ServerEvent =
  | { event: 'taskAdded'; run: Run }
  | { event: 'taskChanged'; run: Run }
  | { event: 'logLines'; id: number; from: number; lines: string[] }
  | { event: 'logEnd'; id: number; total: number; status: RunStatus }
  | { event: 'logPartial'; id: number; line: number; text: string }
  | { event: 'lagged'; id: number; next: number }
  | { event: 'workersChanged'; workers: Worker[] }
  | { event: 'envChanged'; env: import('./envs').EnvView }
  | { event: 'error'; message: string }

/** Client → server frames on `/ws`. */
export type ClientOp =
  | { op: 'follow'; id: number; from: number }
  | { op: 'follow'; id: number; tail: number }
  | { op: 'unfollow'; id: number }
