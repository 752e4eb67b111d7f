// The one HTTP client of the app: every REST call goes through here.
import type {
  ApiErrorBody,
  Env,
  LinesPage,
  NewRun,
  Run,
  RunFilters,
  SearchResult,
  Worker,
} from './types'

/** A non-2xx answer, with the server's JSON body when it sent one. */
export class ApiError extends Error {
  readonly status: number
  readonly body: ApiErrorBody
  /** Seconds to wait, from a `Retry-After` header (a 429), when the server sent one. */
  readonly retryAfter: number | null

  constructor(status: number, body: ApiErrorBody, retryAfter: number | null = null) {
    super(body.message || `HTTP ${status}`)
    this.name = 'ApiError'
    this.status = status
    this.body = body
    this.retryAfter = retryAfter
  }
}

export interface RequestOptions {
  /** A 401 here is an answer the caller handles (login, `/api/me`), not a lost session. */
  quiet401?: boolean
}

let onUnauthenticated: ((error: ApiError) => void) | null = null

/** Called with every 401 of a call not marked `quiet401`: the session is gone, sign in again. */
export function setUnauthenticatedHandler(handler: ((error: ApiError) => void) | null): void {
  onUnauthenticated = handler
}

function retryAfterSeconds(res: Response): number | null {
  const value = res.headers.get('Retry-After')
  if (!value) return null
  if (/^\d+$/.test(value.trim())) return Number(value.trim())
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000))
}

export async function request<T>(
  method: string,
  url: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const init: RequestInit = { method, headers: { Accept: 'application/json' } }
  if (body !== undefined) {
    init.headers = { ...init.headers, 'Content-Type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  const res = await fetch(url, init)
  const text = await res.text()
  let data: unknown = undefined
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = undefined
    }
  }
  if (!res.ok) {
    const errBody =
      data && typeof data === 'object' && 'message' in data
        ? (data as ApiErrorBody)
        : { message: text || res.statusText || `HTTP ${res.status}` }
    const error = new ApiError(res.status, errBody, retryAfterSeconds(res))
    if (res.status === 401 && !options.quiet401) onUnauthenticated?.(error)
    throw error
  }
  return data as T
}

function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') q.set(key, String(value))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

export const api = {
  listRuns(filters: RunFilters, limit: number, before?: number): Promise<Run[]> {
    return request('GET', `/api/testruns${query({ ...filters, limit, before })}`)
  },
  getRun(id: number): Promise<Run> {
    return request('GET', `/api/testruns/${id}`)
  },
  createRun(body: NewRun): Promise<Run> {
    return request('POST', '/api/testruns', body)
  },
  cancelRun(id: number): Promise<Run> {
    return request('POST', `/api/testruns/${id}/cancel`)
  },
  lines(id: number, from: number, limit: number): Promise<LinesPage> {
    return request('GET', `/api/testruns/${id}/lines${query({ from, limit })}`)
  },
  search(id: number, q: string, limit: number): Promise<SearchResult> {
    return request('GET', `/api/testruns/${id}/search${query({ q, limit })}`)
  },
  tests(): Promise<string[]> {
    return request('GET', '/api/tests')
  },
  envs(): Promise<Env[]> {
    return request('GET', '/api/envs')
  },
  workers(): Promise<Worker[]> {
    return request('GET', '/api/workers')
  },
}

/** Where the raw log of a run can be downloaded. */
export function logTxtUrl(id: number): string {
  return `/api/testruns/${id}/log.txt`
}
