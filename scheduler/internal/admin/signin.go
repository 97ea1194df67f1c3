package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The panel's sign-in and sign-out forms are read here, bounded: they are
// reachable without a session, so a body is limited before it is read
// (SigninBodyLimit, 413 beyond), only a URL-encoded form or a JSON object
// is read (415 otherwise: no multipart, nothing spills to disk), and
// failed sign-ins from one address are limited (429 past SigninFailures
// within SigninWindow).

// SigninBodyLimit is the largest sign-in or sign-out body, bytes.
const SigninBodyLimit = 4 << 10

// Failed sign-ins one client address may make within SigninWindow; more are
// answered 429 until the window has passed.
const (
	SigninFailures = 10
	SigninWindow   = time.Minute
)

// maxSigninClients bounds the failure table; past it (an address spread
// wider than that) failures are no longer counted for new addresses.
const maxSigninClients = 4096

// formError is a refused form, with the status and the sentence the
// sign-in page shows.
type formError struct {
	status int
	msg    string
}

func (e *formError) Error() string { return e.msg }

// readForm reads the fields of a sign-in or sign-out body: a URL-encoded
// form (what the HTML form posts) or a JSON object of strings. An empty
// body is no fields.
func readForm(r *http.Request) (url.Values, error) {
	if r.ContentLength > SigninBodyLimit {
		return nil, formTooLarge()
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return url.Values{}, nil
	}
	ctype, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (ctype != "application/x-www-form-urlencoded" && ctype != "application/json") {
		return nil, &formError{http.StatusUnsupportedMediaType,
			fmt.Sprintf("Send the form as application/x-www-form-urlencoded or application/json, not %q.", r.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, SigninBodyLimit+1))
	if err != nil {
		return nil, &formError{http.StatusBadRequest, "The form could not be read: " + err.Error()}
	}
	if len(body) > SigninBodyLimit {
		return nil, formTooLarge()
	}
	if ctype == "application/json" {
		var m map[string]string
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, &formError{http.StatusBadRequest, "The JSON body must be an object of strings, e.g. {\"token\": \"…\"}."}
		}
		v := url.Values{}
		for k, s := range m {
			v.Set(k, s)
		}
		return v, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, &formError{http.StatusBadRequest, "The form is not valid URL encoding."}
	}
	return v, nil
}

func formTooLarge() error {
	return &formError{http.StatusRequestEntityTooLarge, fmt.Sprintf("The form is larger than %d bytes.", SigninBodyLimit)}
}

// asFormError returns err's formError, or a 400 one.
func asFormError(err error) *formError {
	var fe *formError
	if errors.As(err, &fe) {
		return fe
	}
	return &formError{http.StatusBadRequest, err.Error()}
}

// signinLimiter counts failed sign-ins per client address in fixed windows.
// Safe for concurrent use.
type signinLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*signinWindow
}

type signinWindow struct {
	start    time.Time
	failures int
}

func newSigninLimiter() *signinLimiter {
	return &signinLimiter{now: time.Now, clients: map[string]*signinWindow{}}
}

// clientAddr is the address failures are counted by: the peer of the
// connection (behind a proxy, the proxy's: the limit is then shared by all
// its clients), never a header the client writes.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// blocked returns how long addr must wait, 0 when it may try.
func (l *signinLimiter) blocked(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.clients[addr]
	if !ok {
		// An address the full table could not track shares one window.
		if w, ok = l.clients[overflowAddr]; !ok {
			return 0
		}
		addr = overflowAddr
	}
	left := SigninWindow - l.now().Sub(w.start)
	if left <= 0 {
		delete(l.clients, addr)
		return 0
	}
	if w.failures < SigninFailures {
		return 0
	}
	return left
}

// failed counts a failed sign-in of addr.
func (l *signinLimiter) failed(addr string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.clients[addr]
	if ok && now.Sub(w.start) >= SigninWindow {
		w.start, w.failures = now, 0
	}
	if !ok {
		if len(l.clients) >= maxSigninClients {
			l.prune(now)
			if len(l.clients) >= maxSigninClients {
				addr = overflowAddr // counted together, never uncounted
			}
		}
		if w, ok = l.clients[addr]; !ok {
			w = &signinWindow{start: now}
			l.clients[addr] = w
		}
	}
	w.failures++
}

// overflowAddr counts the failures of every address a full table cannot
// track: they share one window, so guessing from ever new addresses is
// limited too.
const overflowAddr = "*"

// prune drops the windows that have passed. The caller holds mu.
func (l *signinLimiter) prune(now time.Time) {
	for addr, w := range l.clients {
		if now.Sub(w.start) >= SigninWindow {
			delete(l.clients, addr)
		}
	}
}
