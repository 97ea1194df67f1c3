// Package agentclient is the scheduler's typed client of the agent API
// (shared/wire paths and bodies) over mTLS. Each Client talks to one agent
// and verifies that the agent's certificate names the server id the
// scheduler believes it is calling. Agent error codes come back as *Error
// values that match this package's sentinels with errors.Is; transport
// failures match ErrUnreachable.
package agentclient
