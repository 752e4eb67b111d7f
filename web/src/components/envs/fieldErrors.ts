// Maps a failed call to messages beside the named fields of a small form.
import { ApiError } from '../../lib/api/client'

export interface Errors {
  fields: Record<string, string>
  /** What belongs to no field of this form. */
  form: string | null
}

export function fieldErrors(error: unknown, fields: readonly string[], fallback: string): Errors {
  const out: Errors = { fields: {}, form: null }
  if (!(error instanceof ApiError)) {
    out.form = `Could not reach the server: ${error instanceof Error ? error.message : String(error)}`
    return out
  }
  const extra: string[] = []
  for (const [field, messages] of Object.entries(error.body.errors ?? {})) {
    const text = (Array.isArray(messages) ? messages : [String(messages)]).join(' ')
    if (fields.includes(field)) out.fields[field] = text
    else if (field === '_schema') extra.push(text)
    else extra.push(`${field}: ${text}`)
  }
  if (extra.length) out.form = extra.join(' ')
  else if (Object.keys(out.fields).length === 0)
    out.form = error.body.message || `${fallback} (HTTP ${error.status})`
  return out
}
