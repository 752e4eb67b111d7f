import { describe, expect, it } from 'vitest'
import { ApiError } from './api/client'
import { formErrors } from './formErrors'

describe('formErrors', () => {
  it('puts each field message beside its field', () => {
    const e = new ApiError(400, {
      message: 'Data validation failed',
      code: 'validation_failed',
      errors: { username: ['Length must be between 3 and 80.'], path: ['Unknown test path.', 'x'] },
    })
    expect(formErrors(e)).toEqual({
      fields: { username: 'Length must be between 3 and 80.', path: 'Unknown test path. x' },
      form: null,
    })
  })

  it('shows a busy environment at Environment, saying busy', () => {
    const e = new ApiError(409, {
      message: 'Environment 3 already has a run',
      code: 'env_busy',
      errors: { env_id: ['environment 3 is held by run 12'] },
    })
    expect(formErrors(e).fields.env_id).toBe('Busy: environment 3 is held by run 12')
    const busy = new ApiError(409, { message: 'Environment 3 is busy', code: 'env_busy' })
    expect(formErrors(busy).fields.env_id).toBe('Environment 3 is busy')
  })

  it('keeps _schema and unknown fields as a form-level message', () => {
    const e = new ApiError(400, {
      message: 'Data validation failed',
      errors: { _schema: ['Invalid input type.'], timeout: ['Unknown field.'] },
    })
    expect(formErrors(e)).toEqual({
      fields: {},
      form: 'Invalid input type. timeout: Unknown field.',
    })
  })

  it('falls back to the message, or to a network error', () => {
    expect(formErrors(new ApiError(500, { message: 'Internal error' })).form).toBe('Internal error')
    expect(formErrors(new TypeError('Failed to fetch')).form).toMatch(/Failed to fetch/)
  })
})
