package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/agent/agenttest"
	"berth/shared/httpbudget"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// The agent's connection budgets (README "Request budgets"), over its real
// mTLS listener (agenttest): slow headers, a slow body and an idle
// keep-alive connection are closed once their timeout is up; a long exec
// outlives the read and write timeouts (it is a streaming route).

func TestAgentConnectionBudgets(t *testing.T) {
	tm := httpbudget.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 400 * time.Millisecond, Write: 500 * time.Millisecond,
		Idle: 400 * time.Millisecond, Stall: 400 * time.Millisecond, MaxHeaderBytes: 8 << 10}
	pki := testutil.NewPKI(t)
	a := agenttest.StartWith(t, pki, "ws-1", agenttest.StreamConfig{HTTP: tm})
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	clientTLS, err := mtls.ClientConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	clientTLS = clientTLS.Clone()
	clientTLS.ServerName = "ws-1"
	dial := func(t *testing.T) *tls.Conn {
		t.Helper()
		conn, err := tls.Dial("tcp", a.Addr(), clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	tests := []struct {
		name  string
		limit time.Duration
		play  func(conn net.Conn) error
		// answered: the play is a whole request, answered before the
		// connection goes idle.
		answered bool
	}{
		{"slow headers", tm.ReadHeader, func(conn net.Conn) error {
			return testutil.Dribble(conn, "GET "+wire.PathHealth+" HTTP/1.1\r\n", "X")
		}, false},
		{"slow body", tm.Read, func(conn net.Conn) error {
			return testutil.Dribble(conn, "POST "+wire.PathContainers+" HTTP/1.1\r\nHost: ws-1\r\nContent-Length: 100\r\n\r\n{", " ")
		}, false},
		{"idle keep-alive", tm.Idle, func(conn net.Conn) error {
			_, err := io.WriteString(conn, "GET "+wire.PathHealth+" HTTP/1.1\r\nHost: ws-1\r\n\r\n")
			return err
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The agent's clock starts at its accept (the handshake is part of
			// the header budget): so does this one, so that a slow handshake on
			// a loaded machine does not look like an early close.
			start := time.Now()
			conn := dial(t)
			go func() { _ = tt.play(conn) }()
			_ = conn.SetReadDeadline(time.Now().Add(tt.limit + 5*time.Second))
			var r io.Reader = conn
			if tt.answered {
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no answer before the idle wait: %v", err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("answer %s, want 200", resp.Status)
				}
				r = br
			}
			_, err := io.Copy(io.Discard, r)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the agent kept the connection open %s (timeout %s)", took, tt.limit)
			}
			if took < tt.limit/2 || took > tt.limit+2*time.Second {
				t.Errorf("closed after %s, want about %s", took, tt.limit)
			}
			t.Logf("%s: closed after %s (timeout %s)", tt.name, took, tt.limit)
		})
	}

	t.Run("a long exec outlives the timeouts", func(t *testing.T) {
		ctr := a.Containers()
		if len(ctr) == 0 {
			ctr = createContainer(t, a, clientTLS)
		}
		run := tm.Read + tm.Write + 200*time.Millisecond
		a.SetExecIO(func(ctx context.Context, _ wire.Container, _ wire.ExecRequest, _ io.Reader, stdout, _ io.Writer) (int, error) {
			select {
			case <-time.After(run):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			_, err := io.WriteString(stdout, "done")
			return 3, err
		})
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
		defer client.CloseIdleConnections()
		resp, err := client.Do(retriable(t, "https://"+a.Addr()+wire.PathContainers+"/"+ctr[0].ID+"/exec", `{"cmd":["sleep","1"]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"exit_code":3`) {
			t.Errorf("exec of %s: %d %s (%v)", run, resp.StatusCode, body, err)
		}
	})
}

// createContainer creates a running container through the API.
func createContainer(t *testing.T, a *agenttest.Agent, clientTLS *tls.Config) []wire.Container {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(retriable(t, "https://"+a.Addr()+wire.PathContainers, `{"name":"berth-ws1","image":"img","workspace_id":"ws1","start":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	return a.Containers()
}

// retriable is a JSON POST that Go's transport sends again on a fresh
// connection if the agent closed the first one before reading it (its
// header budget can run out during a slow handshake on a loaded machine):
// a request with an Idempotency-Key is retried as an idempotent one.
func retriable(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "test")
	return req
}
