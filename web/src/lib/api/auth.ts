// Accounts: the signed-in user, login/logout, API tokens and the audit log
// (PRODUCT.md "Accounts", docs/api.md). Hand-written until the server's
// accounts types are in openapi.json; the shapes follow the contract.
import { request } from './client'

export type Role = 'viewer' | 'runner' | 'admin'
export type AuthMode = 'none' | 'local' | 'proxy'

/** `GET /api/me`: under `--auth none`, `{username: null, role: 'admin', auth: 'none'}`. */
export interface Me {
  username: string | null
  role: Role
  auth: AuthMode
}

/** `POST /api/login` → the account signed in (the session cookie comes with it). */
export interface LoginReply {
  username: string
  role: Role
}

/** `POST /api/tokens` → the one answer that carries the token itself. */
export interface CreatedToken {
  id: number
  name: string
  token: string
  expires_at: string
}

/** One of `GET /api/tokens` (the caller's own; no secrets). */
export interface TokenInfo {
  id: number
  name: string
  created_at: string
  expires_at: string
  last_used: string | null
  expired: boolean
}

/** One `GET /api/audit` entry. */
export interface AuditEntry {
  at: string
  actor: string
  action: string
  target: string
  detail: string
}

export const authApi = {
  me(): Promise<Me> {
    return request('GET', '/api/me', undefined, { quiet401: true })
  },
  login(username: string, password: string): Promise<LoginReply> {
    return request('POST', '/api/login', { username, password }, { quiet401: true })
  },
  /** Ends this session, or with `everywhere` every session of the account. */
  logout(everywhere = false): Promise<{ sessions_ended: number }> {
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
