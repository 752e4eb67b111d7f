// Signing out, from the header or (everywhere) from the tokens page.
import { authApi } from '../../lib/api/auth'
import type { LiveSocket } from '../../lib/ws'

/** POST /api/logout, then a full load of /login: nothing of the account stays in memory. */
export async function signOutAndLeave(socket: LiveSocket, everywhere: boolean): Promise<void> {
  await authApi.logout(everywhere)
  // The server closes the socket now: no reconnect attempt without a session.
  socket.stop()
  window.location.assign('/login')
}
