package podexapi

import "errors"

// Sentinel errors of the API calls; callers test them with errors.Is.
var (
	// ErrNotFound: the API answered 404 (an unknown server or workspace).
	ErrNotFound = errors.New("not found by the podex API")

	// ErrRejected: the API refused the request (4xx other than 404, 408 and
	// 429) or answered what cannot be read: sending it again unchanged will
	// not help.
	ErrRejected = errors.New("rejected by the podex API")

	// ErrUnavailable: no answer, or 5xx, 408 or 429, after every attempt:
	// worth trying again later.
	ErrUnavailable = errors.New("podex API unavailable")
)
