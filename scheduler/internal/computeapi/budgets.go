package computeapi

import (
	"sync"

	"github.com/labstack/echo/v4"
)

// Request budgets (issue 12, README "Request budgets"): what one caller may
// make the compute API hold at once. The body limits are in guard.go
// (JSON routes) and filebody.go (the file write); the connection timeouts
// in berth/shared/httpbudget, applied by the server (app.go) and, for the
// streaming routes, by streaming below.

// Defaults of the per-user limits (Deps.UserExecs, Deps.UserTransfers).
const (
	DefaultUserExecs     = 16
	DefaultUserTransfers = 4
)

// streaming takes a long-lived route (exec, exec-stream, the file content
// routes, the proxies, the terminal) off the server's whole-request read
// and write timeouts: its body and its answer are bounded per read and per
// write by Deps.HTTP.Stall instead (httpbudget.Stream). Routes put it after
// their auth middleware, so an unauthenticated request keeps the
// whole-request bounds.
func (a *API) streaming(next echo.HandlerFunc) echo.HandlerFunc { return a.d.HTTP.EchoStreaming(next) }

// userLimit counts what each user holds of a bounded kind of work.
type userLimit struct {
	mu    sync.Mutex
	limit int
	held  map[string]int
}

func newUserLimit(limit int) *userLimit { return &userLimit{limit: limit, held: map[string]int{}} }

// acquire takes one of user's places; ok is false when all limit are
// taken. Call release once when the work is done.
func (l *userLimit) acquire(user string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[user] >= l.limit {
		return nil, false
	}
	l.held[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.held[user]--; l.held[user] <= 0 {
				delete(l.held, user)
			}
		})
	}, true
}

// holdExec takes one of the caller's exec places (429 when none is left).
func (a *API) holdExec(c echo.Context) (release func(), err error) {
	release, ok := a.execs.acquire(userID(c))
	if !ok {
		return nil, tooManyExecs(a.execs.limit)
	}
	return release, nil
}

// holdTransfer takes one of the caller's file transfer places (429 when
// none is left).
func (a *API) holdTransfer(c echo.Context) (release func(), err error) {
	release, ok := a.transfers.acquire(userID(c))
	if !ok {
		return nil, tooManyTransfers(a.transfers.limit)
	}
	return release, nil
}
