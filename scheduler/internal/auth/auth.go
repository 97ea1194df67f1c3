package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Equal reports whether got matches want in constant time. An empty want
// never matches: an unconfigured token fails closed.
func Equal(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Bearer returns the token of an "Authorization: Bearer <token>" header
// value, and whether it had that form.
func Bearer(header string) (string, bool) {
	const prefix = "Bearer "
	if !strings.HasPrefix(header, prefix) {
		return "", false
	}
	return strings.TrimSpace(header[len(prefix):]), true
}

// HeaderServiceToken carries the podex service token.
const HeaderServiceToken = "X-Internal-Service-Token"

// Failure is a refused request: the status and detail to answer with.
type Failure struct {
	Status int
	Detail string
}

func (f *Failure) Error() string { return f.Detail }

// ServiceToken checks a request's podex service token (contract §1.2):
// X-Internal-Service-Token wins when present, even if wrong; otherwise
// "Authorization: Bearer <token>". An unconfigured token (want empty)
// fails closed (500). next are the other tokens accepted at the same time
// during a rotation (INTERNAL_SERVICE_TOKEN_NEXT; empty ones are skipped):
// see Match.
func ServiceToken(r *http.Request, want string, next ...string) *Failure {
	token := r.Header.Get(HeaderServiceToken)
	if token == "" {
		token, _ = Bearer(r.Header.Get("Authorization"))
	}
	switch {
	case want == "":
		return &Failure{http.StatusInternalServerError, "Service authentication not configured"}
	case token == "":
		return &Failure{http.StatusUnauthorized, "Missing service token"}
	case !Match(token, want, next...):
		return &Failure{http.StatusUnauthorized, "Invalid service token"}
	}
	return nil
}

// Match reports whether got is want or one of next, each compared in
// constant time (Equal). Every token is compared, whichever matches, so
// the time taken says nothing about which one did; an empty token never
// matches.
func Match(got, want string, next ...string) bool {
	ok := Equal(got, want)
	for _, n := range next {
		ok = Equal(got, n) || ok // Equal first: no short circuit
	}
	return ok
}
