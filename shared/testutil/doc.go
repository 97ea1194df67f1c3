// Package testutil holds helpers for berth's tests: an in-process PKI that
// writes real certificates to a temp dir, free ports, and polling.
package testutil
