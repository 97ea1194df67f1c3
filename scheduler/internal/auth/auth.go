// Package auth holds the scheduler's token checks. Tokens are compared in
// constant time over their SHA-256 digests, so neither the content nor the
// length of the configured token leaks through timing. Tokens are never
// logged.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
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
