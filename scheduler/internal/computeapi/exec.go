package computeapi

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
)

const (
	devUser = "dev"
	devHome = "/home/dev"
)

// devExec is an exec as user dev in /home/dev: bash -c command.
func devExec(command string, stdin []byte, timeout time.Duration) orchestrator.ExecRequest {
	return orchestrator.ExecRequest{Command: command, WorkingDir: devHome, Timeout: timeout, User: devUser, Stdin: stdin}
}

// decodeExec validates WorkspaceExecRequest (§3.9): command required,
// working_dir default /home/dev, timeout default 30 s and unbounded.
func decodeExec(b requestBody) (orchestrator.ExecRequest, error) {
	var v validator
	body := v.body(b)
	command := body.requiredString("command")
	dir := deref(body.nullableString("working_dir"))
	timeout := body.intOr("timeout", 30, bounds{})
	if err := v.err(); err != nil {
		return orchestrator.ExecRequest{}, err
	}
	if dir == "" {
		dir = devHome
	}
	req := devExec(command, nil, seconds(timeout))
	req.WorkingDir = dir
	return req, nil
}

// seconds converts a request's timeout; it saturates instead of
// overflowing, and a timeout of zero or less becomes the orchestrator's
// minimum.
func seconds(n int64) time.Duration {
	if n > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(max(n, 0)) * time.Second
}

// exec is POST …/exec (§3.9): always 200 once the owner check passed (and
// the caller is within BERTH_USER_EXEC_LIMIT), with failures reported as
// exit codes. The output comes from the exec's stream and goes into the
// answer piece by piece (execout.go).
func (a *API) exec(c echo.Context) error {
	req, err := decodeExec(bodyOf(c))
	if err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	release, err := a.holdExec(c)
	if err != nil {
		return err
	}
	defer release()
	var out execOutput
	res, err := a.d.Workspaces.ExecStream(c.Request().Context(), ws, req, out.add)
	if err != nil || res.TimedOut {
		ans, _ := a.execOutcome(ws, res, err)
		return writeJSON(c, http.StatusOK, ans)
	}
	out.stdout.dropped += res.StdoutDropped
	out.stderr.dropped += res.StderrDropped
	return out.answer(c, res.ExitCode)
}

// execStream is POST …/exec-stream (§3.10, streamed for real per §15).
// Validation and owner-check errors are JSON; after that the answer is a
// 200 event stream: one `data: <chunk>` event per output chunk as the
// process writes it, then how it ended, then always `data: [DONE]`.
func (a *API) execStream(c echo.Context) error {
	req, err := decodeExec(bodyOf(c))
	if err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	release, err := a.holdExec(c)
	if err != nil {
		return err
	}
	defer release()
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	s := &sse{w: w}
	res, err := a.d.Workspaces.ExecStream(c.Request().Context(), ws, req, s.output)
	s.drain()
	// How it ended. Python ran /exec and sent its stderr as a plain chunk,
	// so the §3.9 messages (timeout, not running, …) stay plain chunks;
	// only a failed Docker exec is an ERROR event.
	switch out, kind := a.execOutcome(ws, res, err); kind {
	case execTimedOut, execRefused:
		s.event(out.Stderr)
	case execFailed:
		s.event("ERROR: " + out.Stderr)
	}
	s.event("[DONE]")
	if s.err != nil {
		a.log.Debug("exec stream: client write failed", "workspace_id", ws.ID, "error", s.err)
	}
	return nil
}

// sse writes the §3.10 events and flushes each one. Output is held back
// per stream only while it ends inside a UTF-8 sequence, so a character
// split across two chunks is sent whole; invalid bytes become U+FFFD.
type sse struct {
	w       *echo.Response
	mu      sync.Mutex
	pending map[string][]byte
	err     error // the first write error; later writes are skipped
}

// output is the onOutput callback; its error stops the exec.
func (s *sse) output(stream string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[string][]byte{}
	}
	buf := append(s.pending[stream], data...)
	cut := len(buf) - incompleteTail(buf)
	s.pending[stream] = append([]byte(nil), buf[cut:]...)
	s.eventLocked(string(buf[:cut]))
	return s.err
}

// drain sends what is held back once the process has ended.
func (s *sse) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, stream := range sortedKeys(s.pending) {
		s.eventLocked(string(s.pending[stream]))
	}
	s.pending = nil
}

func (s *sse) event(data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventLocked(data)
}

func (s *sse) eventLocked(data string) {
	if data == "" || s.err != nil {
		return
	}
	if _, err := s.w.Write([]byte("data: " + sseEscape(data) + "\n\n")); err != nil {
		s.err = err
		return
	}
	s.w.Flush()
}

// sseEscape makes a chunk one SSE line: each newline becomes the two
// characters `\n`, which the API client turns back. CR and CRLF count as
// newlines too: the client splits lines on a bare CR as well, which would
// otherwise cut the event (progress output uses CR).
func sseEscape(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer("\r\n", `\n`, "\r", `\n`, "\n", `\n`).Replace(s)
}

// incompleteTail is how many bytes at the end of b start a UTF-8 sequence
// that the next chunk may complete (0 to 3).
func incompleteTail(b []byte) int {
	for n := 1; n <= min(3, len(b)); n++ {
		c := b[len(b)-n]
		if utf8.RuneStart(c) {
			if c >= 0xC0 && !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
