package e2e

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The terminal (§3.21) end to end: a WebSocket client as the podex API's
// (the token in the handshake headers) against the compose scheduler,
// through the agent, to tmux in berth/workspace:dev.

// termConn is one terminal WebSocket and everything it has output.
type termConn struct {
	t    *testing.T
	conn *websocket.Conn
	out  strings.Builder
}

// openTerminal connects to the workspace's terminal session.
func openTerminal(t *testing.T, id, session, shell string) *termConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(schedulerURL, "http") + "/terminal/" + id + "?session_id=" + session + "&shell=" + shell
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{"X-Internal-Service-Token": {serviceToken()}}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	conn.SetReadLimit(1 << 20) // the podex API's client (websockets' max_size)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &termConn{t: t, conn: conn}
}

// send types text (keystrokes are text frames).
func (c *termConn) send(text string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
		c.t.Fatalf("send %q: %v", text, err)
	}
}

// resize sends the resize frame: 'r', rows and cols as big-endian u16.
func (c *termConn) resize(rows, cols uint16) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte{'r', byte(rows >> 8), byte(rows), byte(cols >> 8), byte(cols)}); err != nil {
		c.t.Fatalf("resize: %v", err)
	}
}

// waitFor reads output until all of it matches re, and returns the
// output read so far.
func (c *termConn) waitFor(re *regexp.Regexp, within time.Duration) string {
	c.t.Helper()
	return c.waitSince(0, re, within)
}

// mark is where the output read so far ends, for waitSince.
func (c *termConn) mark() int { return c.out.Len() }

// waitSince reads output until what came after mark matches re, and
// returns the output read so far.
func (c *termConn) waitSince(mark int, re *regexp.Regexp, within time.Duration) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for !re.MatchString(c.out.String()[mark:]) {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v; output so far:\n%q", re, err, tail(c.out.String(), 2000))
		}
		if typ != websocket.MessageBinary {
			c.t.Fatalf("output frame of type %v, want binary", typ)
		}
		c.out.Write(data)
	}
	return c.out.String()
}

// closeStatus reads until the connection ends and returns its close code
// and reason.
func (c *termConn) closeStatus(within time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, data, err := c.conn.Read(ctx)
		if err == nil {
			c.out.Write(data)
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// killSession is DELETE /terminal/{id}/session/{sid}: want 200, return
// the answer's status and message.
func killSession(t *testing.T, id, sid string) (status, message string) {
	t.Helper()
	r := composeAPI().anonymous().set("X-Internal-Service-Token", serviceToken()).do(t, http.MethodDelete, "/terminal/"+id+"/session/"+sid, nil)
	if r.status != http.StatusOK {
		t.Fatalf("DELETE session %s: got %s, want 200", sid, r)
	}
	var v struct{ Status, Message string }
	r.into(t, &v)
	return v.Status, v.Message
}

func TestTerminal(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("e2e-term-user"))
	id := uniqueID("e2e-term")
	k.mustCreate(t, uniqueID("e2e-term-sess"), id, nil)
	session := uniqueID("s")
	t.Cleanup(func() { killSession(t, id, session) })

	c := openTerminal(t, id, session, "bash")
	c.send("echo hi-$((6*7))\r")
	c.waitFor(regexp.MustCompile(`hi-42`), 30*time.Second)

	// tmux follows the client's size; its status line takes a row. It
	// resizes the pane on a timer of its own, so a command typed right
	// after the resize may still see the old size: ask until it shows.
	c.resize(30, 100)
	size := regexp.MustCompile(`\D29 100\r\n`)
	for i := 0; ; i++ {
		from := c.mark()
		c.send("stty size\r")
		c.waitSince(from, regexp.MustCompile(`\d+ \d+\r\n`), 20*time.Second)
		if size.MatchString(c.out.String()[from:]) {
			break
		}
		if i == 10 {
			t.Fatalf("stty size never showed 29 100: %q", tail(c.out.String(), 300))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Keystroke echo latency, for the record (no bound asserted): typed
	// as a person types (a keystroke every 50 ms: each echo is the first
	// output after a quiet spell and goes out at once), then back to back
	// (each echo follows the previous frame within the 16 ms batching
	// interval, so it waits for the interval's end).
	for _, spaced := range []bool{true, false} {
		var took []time.Duration
		for i := range 20 {
			if spaced {
				time.Sleep(50 * time.Millisecond)
			}
			ch := string(rune('a' + i))
			from := c.mark()
			start := time.Now()
			c.send(ch)
			c.waitSince(from, regexp.MustCompile(ch), 10*time.Second)
			took = append(took, time.Since(start))
		}
		c.send("\x15") // ctrl-u: the typed letters go
		slices.Sort(took)
		how := map[bool]string{true: "typed 50 ms apart", false: "back to back"}[spaced]
		t.Logf("keystroke echo through scheduler, agent and tmux, %s: median %s, max %s (20 keystrokes)", how,
			took[len(took)/2].Round(100*time.Microsecond), took[len(took)-1].Round(100*time.Microsecond))
	}

	// A disconnect detaches: the shell goes on, and attaching again
	// redraws the window, earlier output included.
	// (Input typed right before a disconnect may be lost: the tmux client
	// is hung up as the connection ends. Wait for the echo, as a person
	// would see it.)
	from := c.mark()
	c.send("sleep 1; echo after-$((1+1))\r")
	// bash may redraw the line it edited (after the ctrl-u) with erase
	// sequences inside the echo: "sleep\x1b[K 1; echo" (a fresh clone's run).
	c.waitSince(from, regexp.MustCompile(`sleep(\x1b\[[0-9;]*[A-Za-z])* 1; echo`), 10*time.Second)
	if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	time.Sleep(1500 * time.Millisecond)
	again := openTerminal(t, id, session, "bash")
	screen := again.waitFor(regexp.MustCompile(`(?s)hi-42.*after-2`), 30*time.Second)
	if !strings.Contains(screen, "after-2") {
		t.Errorf("the command typed before the disconnect did not run on: %q", tail(screen, 500))
	}

	// Killing the session ends the attached terminal with 1000.
	if st, msg := killSession(t, id, session); st != "killed" || msg != "Session "+session+" killed" {
		t.Errorf("DELETE session: got %s %q, want killed", st, msg)
	}
	if code, _ := again.closeStatus(20 * time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("the attached terminal after the kill: got close %d, want 1000", code)
	}
	if st, msg := killSession(t, id, session); st != "not_found" || msg != "Session "+session+" not found or already dead" {
		t.Errorf("DELETE session again: got %s %q, want not_found", st, msg)
	}
	if st, msg := killSession(t, uniqueID("e2e-term-none"), session); st != "not_found" || msg != "Workspace not found" {
		t.Errorf("DELETE session of no workspace: got %s %q, want not_found Workspace not found", st, msg)
	}
}

// Each shell starts in its own session and runs commands.
func TestTerminalShells(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("e2e-term-user"))
	id := uniqueID("e2e-term")
	k.mustCreate(t, uniqueID("e2e-term-sess"), id, nil)
	tests := []struct {
		shell   string
		command string
		want    *regexp.Regexp
	}{
		{"bash", `echo "shell=$0 v=$BASH_VERSION"` + "\r", regexp.MustCompile(`shell=-?\S*bash v=\d`)},
		{"zsh", `echo "shell=$0 v=$ZSH_VERSION"` + "\r", regexp.MustCompile(`shell=-?\S*zsh v=\d`)},
		{"fish", `echo "shell=fish v=$FISH_VERSION"` + "\r", regexp.MustCompile(`shell=fish v=\d`)},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			session := uniqueID("s-" + tt.shell)
			t.Cleanup(func() { killSession(t, id, session) })
			c := openTerminal(t, id, session, tt.shell)
			c.send(tt.command)
			c.waitFor(tt.want, 30*time.Second)
			c.send("pwd; echo cols=$COLUMNS\r")
			c.waitFor(regexp.MustCompile(`/home/dev`), 20*time.Second)
		})
	}
}

// The handshake without the token is refused before the upgrade (403);
// an unknown workspace is accepted and closed with 1008.
func TestTerminalRefusals(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := "ws" + strings.TrimPrefix(schedulerURL, "http") + "/terminal/"
	_, resp, err := websocket.Dial(ctx, base+"anything?session_id=s1", nil) //nolint:bodyclose // Dial closes the handshake answer itself
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("no token: got %v, %v; want 403", resp, err)
	}
	c := openTerminal(t, uniqueID("e2e-term-none"), "s1", "bash")
	if code, reason := c.closeStatus(20 * time.Second); code != websocket.StatusPolicyViolation || reason != "Workspace not found" {
		t.Errorf("unknown workspace: got %d %q, want 1008 Workspace not found", code, reason)
	}
}
