package homes

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/shared/mtls"
	"berth/shared/wire"
)

// Errors of the service; the agent's error mapper turns each into its wire
// code.
var (
	// ErrNoExport: the token names no live export (403 forbidden).
	ErrNoExport = errors.New("no such home export, or it expired")
	// ErrSourceFailed: the source agent could not be reached, refused, or
	// its archive broke off (502 source_failed).
	ErrSourceFailed = errors.New("home source failed")
	// ErrVerifyFailed: the copy differs from the source (502 verify_failed).
	ErrVerifyFailed = errors.New("home copy does not match the source")
)

// MinTokenLength is the shortest export token accepted (hex of 16 bytes).
const MinTokenLength = 32

// progressEvery is how often an import reports progress.
const progressEvery = 500 * time.Millisecond

// Service is one agent's side of home transfers: exports it serves to peer
// agents, and imports it fetches from them. Paths given to it are already
// resolved below the agent's data directory.
type Service struct {
	peerTLS *tls.Config // the agent's client identity; verifies peers as agents

	mu      sync.Mutex
	exports map[[sha256.Size]byte]export // by the token's hash: no token is compared byte by byte
}

type export struct {
	dir     string
	expires time.Time
}

// NewService returns a service that fetches from peers with peerTLS, a
// client config carrying the agent's certificate and requiring the agent
// role of the peer (mtls.ClientConfig(files, wire.RoleAgent)).
func NewService(peerTLS *tls.Config) *Service {
	return &Service{peerTLS: peerTLS, exports: map[[sha256.Size]byte]export{}}
}

// AddExport lets dir be fetched with token for ttl.
func (s *Service) AddExport(dir, token string, ttl time.Duration) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("export token: at least %d characters", MinTokenLength)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, e := range s.exports { // expired tickets go when new ones come
		if now.After(e.expires) {
			delete(s.exports, k)
		}
	}
	s.exports[sha256.Sum256([]byte(token))] = export{dir: dir, expires: now.Add(ttl)}
	return nil
}

// lookup returns the directory a live token exports.
func (s *Service) lookup(token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exports[sha256.Sum256([]byte(token))]
	if !ok || time.Now().After(e.expires) {
		return "", ErrNoExport
	}
	return e.dir, nil
}

// ServeArchive answers an archive request for token: the tar stream of the
// exported directory with HeaderHomeBytes, then the digest as the trailer
// HeaderHomeDigest. An error before the stream starts is returned; one
// after it aborts the response (the peer sees a broken stream without a
// digest, never a short archive that looks whole).
func (s *Service) ServeArchive(ctx context.Context, w http.ResponseWriter, token string) error {
	dir, err := s.lookup(token)
	if err != nil {
		return err
	}
	size, err := Size(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("home %s: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set(wire.HeaderHomeBytes, strconv.FormatInt(size, 10))
	h.Set("Trailer", wire.HeaderHomeDigest)
	w.WriteHeader(http.StatusOK)
	sum, err := Archive(ctx, dir, w)
	if err != nil {
		panic(http.ErrAbortHandler) // the peer must see a broken stream
	}
	h.Set(wire.HeaderHomeDigest, sum.Digest)
	return nil
}

// Import copies the source's export into dir: into a staging directory
// first, verified against the source's digest, then put in place of dir
// (whatever was there is removed). progress is called as data arrives and
// once at the end. A failure removes the staging directory and leaves dir
// as it was, so the import can be restarted from the start.
func (s *Service) Import(ctx context.Context, req wire.HomeImport, dir string, progress func(wire.HomeProgress)) (Summary, error) {
	staging := dir + ".incoming"
	if err := os.RemoveAll(staging); err != nil { // an earlier attempt's
		return Summary{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Summary{}, err
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return Summary{}, err
	}
	sum, err := s.fetch(ctx, req, staging, progress)
	if err != nil {
		_ = os.RemoveAll(staging)
		return Summary{}, err
	}
	if err := replace(dir, staging); err != nil {
		_ = os.RemoveAll(staging)
		return Summary{}, err
	}
	return sum, nil
}

// fetch streams the archive into staging and verifies it.
func (s *Service) fetch(ctx context.Context, req wire.HomeImport, staging string, progress func(wire.HomeProgress)) (Summary, error) {
	tr := &http.Transport{TLSClientConfig: mtls.ForServer(s.peerTLS, req.SourceServerID), ForceAttemptHTTP2: true,
		// A source that vanished mid-copy sends no RST: keepalive probes
		// (after 10 s of silence, every 5 s, three unanswered) find it.
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+req.SourceAddr+wire.PathHomeArchive, nil)
	if err != nil {
		return Summary{}, fmt.Errorf("%w: %w", ErrSourceFailed, err)
	}
	hreq.Header.Set(wire.HeaderHomeToken, req.Token)
	resp, err := (&http.Client{Transport: tr}).Do(hreq)
	if err != nil {
		return Summary{}, fmt.Errorf("%w: %w", ErrSourceFailed, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var we wire.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&we)
		return Summary{}, fmt.Errorf("%w: %s answered %d %s: %s", ErrSourceFailed, req.SourceServerID, resp.StatusCode, we.Code, we.Message)
	}
	total, _ := strconv.ParseInt(resp.Header.Get(wire.HeaderHomeBytes), 10, 64)
	body := &sourceReader{r: resp.Body}
	last := time.Now()
	got, err := Extract(ctx, body, staging, func(bytes, files int64) {
		if progress != nil && time.Since(last) >= progressEvery {
			last = time.Now()
			progress(wire.HomeProgress{Bytes: bytes, TotalBytes: total, Files: files})
		}
	})
	if err == nil {
		_, err = io.Copy(io.Discard, body) // to the end, for the trailer
	}
	if body.err != nil {
		return Summary{}, fmt.Errorf("%w: archive broke off: %w", ErrSourceFailed, body.err)
	}
	if err != nil {
		return Summary{}, err
	}
	want := resp.Trailer.Get(wire.HeaderHomeDigest)
	if want == "" {
		return Summary{}, fmt.Errorf("%w: the archive ended without its digest", ErrSourceFailed)
	}
	if err := syncDir(staging); err != nil {
		return Summary{}, err
	}
	check, err := Digest(ctx, staging)
	if err != nil {
		return Summary{}, fmt.Errorf("verify copy: %w", err)
	}
	if check.Digest != want {
		return Summary{}, fmt.Errorf("%w: source %s, copy %s", ErrVerifyFailed, want, check.Digest)
	}
	check.Skipped = got.Skipped
	if progress != nil {
		progress(wire.HomeProgress{Bytes: check.Bytes, TotalBytes: total, Files: check.Files})
	}
	return check, nil
}

// sourceReader remembers a read error of the source's stream, to tell it
// from a local failure.
type sourceReader struct {
	r   io.Reader
	err error
}

func (r *sourceReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// syncDir flushes the file system holding dir to disk.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// replace puts staging in place of dir: dir (if any) is renamed aside, then
// staging renamed to dir, then the old one removed.
func replace(dir, staging string) error {
	old := dir + ".replaced"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	switch err := os.Rename(dir, old); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	}
	if err := os.Rename(staging, dir); err != nil {
		_ = os.Rename(old, dir)
		return err
	}
	return os.RemoveAll(old)
}
