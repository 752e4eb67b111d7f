// Accounts: the signed-in user, login/logout, API tokens and the audit log
// (PRODUCT.md "Accounts", docs/accounts.md). The shapes come from the
// generated schema.ts; `Me` narrows `auth` to the modes.
import { request } from './client'
import type { components } from './schema'

type Schemas = components['schemas']

export type Role = Schemas['Role']
export type AuthMode = 'none' | 'local' | 'proxy'

/** `GET /api/me`: under `--auth none`, `{username: null, role: 'admin', auth: 'none'}`.
 * The document types `auth` as any string; the page knows the three modes. */
export interface Me {
  username: string | null
  role: Role
  auth: AuthMode
}

/** `POST /api/login` → the account signed in (the session cookie comes with it). */
export type LoginReply = { username: string; role: Role }

/** `POST /api/tokens` → the one answer that carries the token itself. */
export type CreatedToken = Schemas['TokenCreated']

/** One of `GET /api/tokens` (the caller's own; no secrets). */
export type TokenInfo = Schemas['TokenInfo']

/** One `GET /api/audit` entry. */
export type AuditEntry = Schemas['AuditEntry']

export const authApi = {
  me(): Promise<Me> {
    return request('GET', '/api/me', undefined, { quiet401: true })
  },
  login(username: string, password: string): Promise<LoginReply> {
    const body: Schemas['LoginBody'] = { username, password }
    return request('POST', '/api/login', body, { quiet401: true })
  },
  /** Ends this session, or with `everywhere` every session of the account. */
  logout(everywhere = false): Promise<Schemas['LoggedOut']> {
    return request('POST', '/api/logout', everywhere ? { everywhere } : undefined, {
      quiet401: true,
    })
  },
  tokens(): Promise<TokenInfo[]> {
    return request('GET', '/api/tokens')
  },
  createToken(name: string, expiresInDays?: number): Promise<CreatedToken> {
    return request('POST', '/api/tokens', {
      name,
      ...(expiresInDays !== undefined ? { expires_in_days: expiresInDays } : {}),
    })
  },
  revokeToken(id: number): Promise<void> {
    return request('DELETE', `/api/tokens/${id}`)
  },
  audit(limit: number): Promise<AuditEntry[]> {
    return request('GET', `/api/audit?limit=${limit}`)
  },
}
