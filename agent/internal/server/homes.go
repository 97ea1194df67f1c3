package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"berth/agent/internal/docker"
	"berth/agent/internal/homes"
	"berth/shared/mtls"
	"berth/shared/wire"
)

// Homes is what the home transfer routes need: the data directory the
// paths are relative to, and the transfer service.
type Homes struct {
	DataDir string
	Service *homes.Service
}

// maxExportTTL bounds how long an export token lives.
const maxExportTTL = time.Hour

// errForbidden: the caller's certificate does not carry the role the route
// needs (403 forbidden).
var errForbidden = errors.New("route not allowed for this certificate's role")

// EnableHomes serves the home transfer routes (wire/homes.go) with h.
// Call it before Serve.
func (s *Server) EnableHomes(h Homes) { s.homes = &h }

func (s *Server) registerHomes(e *echo.Echo) {
	e.POST(wire.PathHomeExports, s.addHomeExport)
	e.POST(wire.PathHomeImports, s.importHome, s.streaming)
	e.GET(wire.PathHomeArchive, s.homeArchive, s.streaming)
}

// peerRoutes are the routes a peer agent's certificate may call; every
// other route needs the scheduler's.
var peerRoutes = []string{wire.PathHomeArchive}

// authorize lets scheduler certificates call every route and agent
// certificates only the peer routes. Serve always runs with client
// certificates required (mtls.ServerConfig), so a request without TLS
// state only comes from a test calling Handler directly.
//
// Before that, every request's client certificate is re-verified (the
// function given to CheckPeers: chain, revocation list, role), so a
// certificate revoked while its connection stays open (keep-alive, HTTP/2)
// is refused on its next request, not only at the next handshake.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := c.Request(); r.TLS != nil && s.checkPeer != nil {
			if err := s.checkPeer(r.TLS.PeerCertificates); err != nil {
				s.log.Warn("client certificate refused on an open connection", "remote", r.RemoteAddr, "error", err)
				return certRefusedError{err}
			}
		}
		if isScheduler(c.Request()) || slices.Contains(peerRoutes, c.Path()) {
			return next(c)
		}
		return errForbidden
	}
}

// certRefusedError is a 403 (errForbidden) that says why the certificate
// was refused (revoked, expired, no longer trusted).
type certRefusedError struct{ err error }

func (e certRefusedError) Error() string   { return "client certificate refused: " + e.err.Error() }
func (e certRefusedError) Unwrap() []error { return []error{errForbidden, e.err} }

// CheckPeers sets the re-verification of each request's client
// certificates (mtls.Identity.CheckPeer). Call it before Serve.
func (s *Server) CheckPeers(check func([]*x509.Certificate) error) { s.checkPeer = check }

// isScheduler reports whether the request's client certificate carries the
// scheduler role.
func isScheduler(r *http.Request) bool {
	if r.TLS == nil {
		return true
	}
	return len(r.TLS.PeerCertificates) > 0 && slices.Contains(mtls.Role(r.TLS.PeerCertificates[0]), wire.RoleScheduler)
}

func (s *Server) homeDir(rel string) (string, error) {
	if s.homes == nil {
		return "", echo.NewHTTPError(http.StatusNotImplemented, "home transfers are not enabled on this agent")
	}
	return docker.DataPath(s.homes.DataDir, rel)
}

func (s *Server) addHomeExport(c echo.Context) error {
	var req wire.HomeExport
	if err := decode(c, &req); err != nil {
		return err
	}
	dir, err := s.homeDir(req.Path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: home %s", docker.ErrNotFound, req.Path)
	} else if err != nil {
		return err
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl <= 0 || ttl > maxExportTTL {
		return badRequest("ttl_seconds must be between 1 and 3600")
	}
	if err := s.homes.Service.AddExport(dir, req.Token, ttl); err != nil {
		return badRequest(err.Error())
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) homeArchive(c echo.Context) error {
	if s.homes == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "home transfers are not enabled on this agent")
	}
	err := s.homes.Service.ServeArchive(c.Request().Context(), c.Response(), c.Request().Header.Get(wire.HeaderHomeToken))
	if errors.Is(err, fs.ErrNotExist) {
		return docker.ErrNotFound
	}
	return err
}

// importHome answers NDJSON HomeProgress lines, the last with Done set.
func (s *Server) importHome(c echo.Context) error {
	var req wire.HomeImport
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.SourceServerID == "" || req.SourceAddr == "" || req.Token == "" {
		return badRequest("source_server_id, source_addr and token are required")
	}
	dir, err := s.homeDir(req.Path)
	if err != nil {
		return err
	}
	nd := newNDJSON(c)
	start := time.Now()
	sum, err := s.homes.Service.Import(c.Request().Context(), req, dir, func(p wire.HomeProgress) { _ = nd.send(p) })
	final := wire.HomeProgress{Done: true, Bytes: sum.Bytes, TotalBytes: sum.Bytes, Files: sum.Files, Skipped: sum.Skipped, Digest: sum.Digest}
	if err != nil {
		final.Code, final.Error = homeErrorCode(err), err.Error()
		s.log.Warn("home import failed", "path", req.Path, "source", req.SourceServerID, "error", err)
	} else {
		s.log.Info("home imported", "path", req.Path, "source", req.SourceServerID, "bytes", sum.Bytes,
			"files", sum.Files, "seconds", time.Since(start).Seconds())
	}
	return nd.send(final)
}

func homeErrorCode(err error) string {
	switch {
	case errors.Is(err, homes.ErrSourceFailed):
		return wire.CodeSourceFailed
	case errors.Is(err, homes.ErrVerifyFailed):
		return wire.CodeVerifyFailed
	}
	return wire.CodeInternal
}
