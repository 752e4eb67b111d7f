// Maps a failed `POST /api/testruns` to messages beside the queue form's fields.
import { ApiError } from './api/client'

export const FORM_FIELDS = ['username', 'env_id', 'labels', 'path', 'priority', 'wait'] as const
export type FormField = (typeof FORM_FIELDS)[number]

export interface FormErrors {
  fields: Partial<Record<FormField, string>>
  /** What belongs to no field: `_schema`, unknown fields, network or server trouble. */
  form: string | null
}

export function noErrors(): FormErrors {
  return { fields: {}, form: null }
}

export function formErrors(error: unknown): FormErrors {
  const out = noErrors()
  if (!(error instanceof ApiError)) {
    out.form = `Could not reach the server: ${error instanceof Error ? error.message : String(error)}`
    return out
  }
  const { body, status } = error
  const extra: string[] = []
  for (const [field, messages] of Object.entries(body.errors ?? {})) {
    const text = (Array.isArray(messages) ? messages : [String(messages)]).join(' ')
    if ((FORM_FIELDS as readonly string[]).includes(field)) out.fields[field as FormField] = text
    else extra.push(field === '_schema' ? text : `${field}: ${text}`)
  }
  if (status === 409 && body.code === 'env_busy' && !out.fields.labels) {
    const msg = out.fields.env_id ?? body.message
    out.fields.env_id = /busy/i.test(msg) ? msg : `Busy: ${msg}`
  }
  if (status === 409 && body.code === 'env_disabled' && !out.fields.env_id)
    out.fields.env_id = body.message
  if (extra.length) out.form = extra.join(' ')
  else if (Object.keys(out.fields).length === 0) out.form = body.message || `HTTP ${status}`
  return out
}
