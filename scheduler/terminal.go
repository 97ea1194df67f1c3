package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/term"
)

// `scheduler terminal WORKSPACE_ID [--session S] [--shell bash|zsh|fish]`
// opens the workspace's terminal through the compute API (contract §3.21)
// as the podex API does: BERTH_URL (default http://127.0.0.1:3003) with the
// service token INTERNAL_SERVICE_TOKEN. The local terminal is put in raw
// mode and wired to the WebSocket: keystrokes go out as text frames, the
// output comes back in binary frames, and the window size follows the
// local one (a resize frame at the start and on every SIGWINCH). Leave with
// tmux's detach (ctrl-b d: the session lives on) or by ending the shell.

const terminalUsage = "usage: scheduler terminal WORKSPACE_ID [--session ID] [--shell bash|zsh|fish]"

func terminalCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("terminal", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	session := fs.String("session", "", "terminal session id (its tmux session is podex-ID); default: the workspace's own")
	shell := fs.String("shell", "bash", "shell of a new session: bash, zsh or fish")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		return errors.New(terminalUsage)
	}
	base := os.Getenv("BERTH_URL")
	if base == "" {
		base = "http://127.0.0.1:3003"
	}
	target, err := terminalURL(base, pos[0], *session, *shell)
	if err != nil {
		return err
	}

	in, out := os.Stdin, os.Stdout
	size := func() (rows, cols uint16, ok bool) {
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
			return 0, 0, false
		}
		return uint16(h), uint16(w), true
	}
	resized := make(chan os.Signal, 1)
	signal.Notify(resized, syscall.SIGWINCH)
	defer signal.Stop(resized)
	if term.IsTerminal(int(in.Fd())) {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer func() { _ = term.Restore(int(in.Fd()), old) }()
	}
	err = runTerminal(ctx, target, os.Getenv("INTERNAL_SERVICE_TOKEN"), in, out, size, resized)
	if err != nil {
		fmt.Fprint(out, "\r\n")
	}
	return err
}

// terminalURL is the WebSocket URL of a workspace's terminal.
func terminalURL(base, workspaceID, session, shell string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("BERTH_URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("BERTH_URL %q: want http:// or https://", base)
	}
	u = u.JoinPath("terminal", workspaceID)
	q := url.Values{}
	if session != "" {
		q.Set("session_id", session)
	}
	if shell != "" {
		q.Set("shell", shell)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// runTerminal connects to target and relays until the session ends: in to
// the terminal as keystrokes, its output to out, a resize frame at the
// start and on every value of resized (size gives the local size; ok false
// when there is none). A normal close (1000) is a nil error; any other end
// is an error that says how.
func runTerminal(ctx context.Context, target, token string, in io.Reader, out io.Writer,
	size func() (rows, cols uint16, ok bool), resized <-chan os.Signal) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, resp, err := websocket.Dial(dctx, target, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{"X-Internal-Service-Token": {token}}})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%s: refused (403): check INTERNAL_SERVICE_TOKEN", target)
		}
		return fmt.Errorf("connect %s: %w", target, err)
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(1 << 20)

	sendSize := func() error {
		rows, cols, ok := size()
		if !ok {
			return nil
		}
		return conn.Write(ctx, websocket.MessageBinary, []byte{'r', byte(rows >> 8), byte(rows), byte(cols >> 8), byte(cols)})
	}
	if err := sendSize(); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	// Input ends with the connection or stdin; a read of the process's
	// stdin blocked at the end is left to the process's exit.
	go func() {
		buf := make([]byte, 32<<10)
		var tail []byte // an incomplete UTF-8 sequence, kept for the next read
		for {
			n, err := in.Read(buf)
			if n > 0 {
				data := append(tail, buf[:n]...)
				cut := completeUTF8(data)
				tail = append([]byte(nil), data[cut:]...)
				if cut > 0 {
					if werr := conn.Write(ctx, websocket.MessageText, data[:cut]); werr != nil {
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // window size
		for {
			select {
			case <-done:
				return
			case <-resized:
				if sendSize() != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			switch {
			case errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure:
				return nil
			case errors.As(err, &ce):
				return fmt.Errorf("terminal closed: %d %s", ce.Code, ce.Reason)
			}
			return fmt.Errorf("terminal connection lost: %w", err)
		}
		if _, err := out.Write(data); err != nil {
			return err
		}
	}
}

// completeUTF8 is the length of b without a trailing incomplete UTF-8
// sequence (invalid bytes count as complete: they are sent as they are).
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
