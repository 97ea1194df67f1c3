package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/registry"
)

// This file is the one place that turns failures into HTTP statuses. Every
// handler is mounted through API.handle, which passes its error here; the
// echo error handler of the app (computeapi.ErrorHandler) then writes
// {"detail": …}.

// The kinds of failure a handler reports. Handlers build them with failf so
// that the message, which is the detail the caller sees, says exactly what is
// wrong; errors.Is on the kind picks the status.
var (
	ErrInvalid  = errors.New("invalid request")   // 400
	ErrNotFound = errors.New("not found")         // 404
	ErrConflict = errors.New("conflict")          // 409
	ErrAgent    = errors.New("agent call failed") // 502
)

// Authentication failures of the admin token.
var (
	errAdminNotConfigured = echo.NewHTTPError(http.StatusInternalServerError, "Admin authentication not configured")
	errMissingAdminToken  = echo.NewHTTPError(http.StatusUnauthorized, "Missing admin token")
	errInvalidAdminToken  = echo.NewHTTPError(http.StatusUnauthorized, "Invalid admin token")
	errSessionEnded       = echo.NewHTTPError(http.StatusUnauthorized, "Session expired or signed out: sign in again")
)

// detailError is a failure whose message is meant for the caller.
type detailError struct {
	kind error
	msg  string
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.kind }

// failf returns an error of the given kind whose text is the detail.
func failf(kind error, format string, args ...any) error {
	return &detailError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// httpError maps err to the HTTP error the caller gets. Errors of no known
// kind are logged and become a bare 500.
func (a *API) httpError(c echo.Context, err error) error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he
	}
	var status int
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, registry.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, registry.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, registry.ErrConflict), errors.Is(err, registry.ErrServerInUse):
		status = http.StatusConflict
	case errors.Is(err, ErrAgent), errors.Is(err, agentclient.ErrUnreachable), errors.Is(err, agentclient.ErrAgent),
		errors.Is(err, agentclient.ErrDocker), errors.Is(err, agentclient.ErrUnavailable), errors.Is(err, agentclient.ErrTimeout):
		status = http.StatusBadGateway
	default:
		a.log.Error("admin request failed", "method", c.Request().Method, "path", c.Path(), "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Internal Server Error")
	}
	return echo.NewHTTPError(status, err.Error())
}

// handle mounts h so that its error goes through httpError.
func (a *API) handle(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := h(c); err != nil {
			return a.httpError(c, err)
		}
		return nil
	}
}
