// The app's names for the server's DTOs. The shapes come from
// `schema.ts`, generated (`npm run gen:api`) from `openapi.json`, which the
// Rust test suite generates from the server's own types and compares with
// the committed file (src/openapi.rs). So a field the server adds, drops or
// retypes fails `npm run typecheck` here instead of drifting. docs/api.md
// describes the same contract in prose.
import type { components } from './schema'

type Schemas = components['schemas']

export type RunStatus = Schemas['RunStatus']

// A Record over the union: a status the server gains or loses fails typecheck.
const STATUS_ORDER: Record<RunStatus, true> = {
  queued: true,
  created: true,
  running: true,
  succeeded: true,
  failed: true,
  unknown: true,
  cancelled: true,
  timeout: true,
}

/** Every status, in the order the API documents them. */
export const RUN_STATUSES = Object.keys(STATUS_ORDER) as readonly RunStatus[]

/** A run, exactly as `GET /api/testruns/{id}` returns it. */
export type Run = Schemas['Run']

/** A `POST /api/testruns` body; `env_id` and `priority` may also be strings of digits. */
export type NewRun = Omit<Schemas['CreateRun'], 'env_id' | 'priority' | 'wait'> & {
  env_id?: number | string
  priority?: number | string
  wait?: boolean
}

/** `{"message", "errors"?, "code", ...}`: every error body of the API (`code`
 * is absent only when the client had to make the body up, e.g. a proxy's 502). */
export type ApiErrorBody = Omit<Schemas['ErrorBody'], 'code'> & { code?: string }

export type Env = Schemas['EnvView']
export type Worker = Schemas['WorkerInfo']
export type LinesPage = Schemas['LinesPage']
export type SearchMatch = Schemas['Match']
export type SearchResult = Schemas['SearchResult']

export interface RunFilters {
  user?: string
  env_id?: string
  status?: string
  path?: string
}

/** Server → client frames on `/ws` (docs/ws.md). */
export type ServerEvent = Schemas['WsServerEvent']

/** Client → server frames on `/ws`. */
export type ClientOp = Schemas['WsClientOp']
