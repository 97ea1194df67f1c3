// Package auth holds the scheduler's token checks. Tokens are compared in
// constant time over their SHA-256 digests, so neither the content nor the
// length of the configured token leaks through timing. Tokens are never
// logged.
package auth
