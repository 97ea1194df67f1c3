package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

func TestTerminalURL(t *testing.T) {
	tests := []struct{ base, id, session, shell, want string }{
		{"http://127.0.0.1:3003", "w1", "s1", "zsh", "ws://127.0.0.1:3003/terminal/w1?session_id=s1&shell=zsh"},
		{"https://compute.example.com/", "w1", "", "bash", "wss://compute.example.com/terminal/w1?shell=bash"},
		{"http://h/prefix", "w 1", "a&b", "", "ws://h/prefix/terminal/w%201?session_id=a%26b"},
	}
	for _, tt := range tests {
		got, err := terminalURL(tt.base, tt.id, tt.session, tt.shell)
		if err != nil || got != tt.want {
			t.Errorf("terminalURL(%q, %q, %q, %q): got %q, %v; want %q", tt.base, tt.id, tt.session, tt.shell, got, err, tt.want)
		}
	}
	if _, err := terminalURL("ftp://h", "w1", "", ""); err == nil {
		t.Error("ftp:// base: got no error")
	}
}

// fakeTerminalServer is the compute API's terminal as the CLI sees it: it
// records the frames it gets, echoes text frames as binary output and
// closes with 1000 after "exit".
type fakeTerminalServer struct {
	mu     sync.Mutex
	frames []string // "text:…" or "binary:…"
}

func (f *fakeTerminalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Internal-Service-Token") != "tok" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = conn.CloseNow() }()
	ctx := r.Context()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.frames = append(f.frames, map[websocket.MessageType]string{websocket.MessageText: "text:", websocket.MessageBinary: "binary:"}[typ]+string(data))
		f.mu.Unlock()
		if typ != websocket.MessageText {
			continue
		}
		if err := conn.Write(ctx, websocket.MessageBinary, data); err != nil {
			return
		}
		if strings.HasSuffix(string(data), "exit") {
			_ = conn.Close(websocket.StatusNormalClosure, "Terminal session ended")
			return
		}
	}
}

func TestRunTerminal(t *testing.T) {
	f := &fakeTerminalServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	target := "ws" + strings.TrimPrefix(srv.URL, "http") + "/terminal/w1"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rows := uint16(24)
	var sizeMu sync.Mutex
	size := func() (uint16, uint16, bool) { sizeMu.Lock(); defer sizeMu.Unlock(); return rows, 80, true }
	resized := make(chan os.Signal, 1)
	inR, inW := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runTerminal(ctx, target, "tok", inR, &out, size, resized) }()

	// "é" cut between two reads travels whole, in the second frame.
	_, _ = inW.Write([]byte("h\xc3"))
	waitFrames(t, f, 2)
	sizeMu.Lock()
	rows = 50
	sizeMu.Unlock()
	resized <- syscall.SIGWINCH
	waitFrames(t, f, 3)
	_, _ = inW.Write([]byte("\xa9 exit"))
	if err := <-done; err != nil {
		t.Fatalf("runTerminal: %v", err)
	}
	inW.Close()
	want := []string{"binary:r\x00\x18\x00\x50", "text:h", "binary:r\x00\x32\x00\x50", "text:é exit"}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := cmp.Diff(want, f.frames); d != "" {
		t.Errorf("frames (-want +got):\n%s", d)
	}
	if out.String() != "hé exit" {
		t.Errorf("output: got %q, want %q", out.String(), "hé exit")
	}

	err := runTerminal(ctx, target, "wrong", strings.NewReader(""), io.Discard, size, nil)
	if err == nil || !strings.Contains(err.Error(), "INTERNAL_SERVICE_TOKEN") {
		t.Errorf("wrong token: got %v, want a 403 naming INTERNAL_SERVICE_TOKEN", err)
	}
}

func waitFrames(t *testing.T, f *fakeTerminalServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.frames)
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames: got %d, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCompleteUTF8(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 3}, {"a\xc3", 1}, {"a\xc3\xa9", 3}, {"\xe2\x82", 0}, {"x\xf0\x9f\x98", 1},
		{"\xff", 1}, {"a\x80", 2}, // invalid bytes go as they are
	}
	for _, tt := range tests {
		if got := completeUTF8([]byte(tt.in)); got != tt.want {
			t.Errorf("completeUTF8(%q): got %d, want %d", tt.in, got, tt.want)
		}
	}
}
