package admin

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// Panel sessions are held here, in memory: the cookie carries a random
// session id, never the admin token. A session ends TTL after sign-in, or
// once it has gone unused for Idle, or at sign-out, which deletes it so that
// the old cookie opens nothing. A scheduler restart signs everyone out (the
// sessions are not in the registry: an admin signs in again, nothing else is
// lost).

// Defaults of the session lifetimes (BERTH_ADMIN_SESSION_TTL,
// BERTH_ADMIN_SESSION_IDLE).
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSessionIdle = time.Hour
)

// maxSessions bounds the table: signing in takes the admin token, so only
// an admin fills it; past the bound the least recently used session ends.
const maxSessions = 1024

// session is one signed-in browser.
type session struct {
	csrf     string // sent back by the panel's script on every state-changing call
	created  time.Time
	lastSeen time.Time
}

// sessions is the table. Safe for concurrent use.
type sessions struct {
	ttl, idle time.Duration
	now       func() time.Time

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(ttl, idle time.Duration) *sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if idle <= 0 || idle > ttl {
		idle = min(DefaultSessionIdle, ttl)
	}
	return &sessions{ttl: ttl, idle: idle, now: time.Now, byID: map[string]*session{}}
}

// create starts a session and returns its id and CSRF token.
func (s *sessions) create() (id, csrf string) {
	id, csrf = randomToken(), randomToken()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	if len(s.byID) >= maxSessions {
		s.dropLeastRecent()
	}
	s.byID[id] = &session{csrf: csrf, created: now, lastSeen: now}
	return id, csrf
}

// lookup returns the live session of id. touch counts the lookup as use
// (an API call or a page load); the panel's event stream only checks.
func (s *sessions) lookup(id string, touch bool) (session, bool) {
	if id == "" {
		return session{}, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if s.expired(ss, now) {
		delete(s.byID, id)
		return session{}, false
	}
	if touch {
		ss.lastSeen = now
	}
	return *ss, true
}

// remove ends the session of id (sign-out).
func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// expiry is when a session last seen now would end: the first of the idle
// and the absolute bound.
func (s *sessions) expiry(ss session) time.Time {
	idle, abs := ss.lastSeen.Add(s.idle), ss.created.Add(s.ttl)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

func (s *sessions) expired(ss *session, now time.Time) bool { return !now.Before(s.expiry(*ss)) }

// sweep drops ended sessions. The caller holds mu.
func (s *sessions) sweep(now time.Time) {
	for id, ss := range s.byID {
		if s.expired(ss, now) {
			delete(s.byID, id)
		}
	}
}

// dropLeastRecent ends the session unused longest. The caller holds mu.
func (s *sessions) dropLeastRecent() {
	var oldest string
	var at time.Time
	for id, ss := range s.byID {
		if oldest == "" || ss.lastSeen.Before(at) {
			oldest, at = id, ss.lastSeen
		}
	}
	delete(s.byID, oldest)
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}
