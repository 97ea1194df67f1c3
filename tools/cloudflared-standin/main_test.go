package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run the command itself: with STANDIN_MAIN=1 the
// test binary is the stand-in.
func TestMain(m *testing.M) {
	if os.Getenv("STANDIN_MAIN") == "1" {
		os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func token(json string) string { return base64.StdEncoding.EncodeToString([]byte(json)) }

var validToken = token(`{"a":"0123456789abcdef","t":"6FF42AE2-765D-4ADF-8112-31C55C1551EF","s":"c2VjcmV0"}`)

func TestParseArgs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	none := env(nil)
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantCmd command
		want    options // compared without token
		wantErr string  // a substring; "" = no error
		usage   bool    // the error is a usage error
	}{
		{name: "no arguments", args: nil, wantCmd: cmdHelp},
		{name: "version", args: []string{"--version"}, wantCmd: cmdVersion},
		{name: "version -v", args: []string{"-v"}, wantCmd: cmdVersion},
		{name: "help", args: []string{"help"}, wantCmd: cmdHelp},
		{name: "http tunnel", args: []string{"tunnel", "run", "--token", validToken, "--url", "http://localhost:3000"},
			wantCmd: cmdRun, want: options{url: "http://localhost:3000", loglevel: "info", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}},
		{name: "ssh tunnel: no url", args: []string{"tunnel", "run", "--token", validToken},
			wantCmd: cmdRun, want: options{loglevel: "info", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}},
		{name: "flags before run, = forms, a scheme-less url", args: []string{"tunnel", "--no-autoupdate", "--url=localhost:8080", "run", "--token=" + validToken, "--metrics", "127.0.0.1:0"},
			wantCmd: cmdRun, want: options{url: "http://localhost:8080", metrics: "127.0.0.1:0", noAutoupdate: true, loglevel: "info", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}},
		{name: "token from TUNNEL_TOKEN", args: []string{"tunnel", "run"}, getenv: env(map[string]string{"TUNNEL_TOKEN": validToken}),
			wantCmd: cmdRun, want: options{loglevel: "info", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}},
		{name: "ssh origin", args: []string{"tunnel", "run", "--token", validToken, "--url", "ssh://localhost:22"},
			wantCmd: cmdRun, want: options{url: "ssh://localhost:22", loglevel: "info", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}},

		{name: "unknown command", args: []string{"access", "login"}, wantErr: "implements only `cloudflared tunnel run`", usage: true},
		{name: "tunnel without run", args: []string{"tunnel", "--url", "localhost:3000"}, wantErr: "quick tunnels", usage: true},
		{name: "run without token or name", args: []string{"tunnel", "run"},
			wantErr: `"cloudflared tunnel run" requires the ID or name of the tunnel`, usage: true},
		{name: "a named tunnel", args: []string{"tunnel", "run", "my-tunnel"}, wantErr: "only remotely-managed tunnels", usage: true},
		{name: "two names", args: []string{"tunnel", "run", "--token", validToken, "a", "b"}, wantErr: "accepts only one argument", usage: true},
		{name: "unknown flag", args: []string{"tunnel", "run", "--token", validToken, "--hello"},
			wantErr: "Incorrect Usage: flag provided but not defined: -hello", usage: true},
		{name: "flag without value", args: []string{"tunnel", "run", "--token"}, wantErr: "flag needs an argument", usage: true},
		{name: "bad log level", args: []string{"tunnel", "run", "--token", validToken, "--loglevel", "loud"}, wantErr: "unknown log level", usage: true},
		{name: "token not base64", args: []string{"tunnel", "run", "--token", "not a token"}, wantErr: "Provided Tunnel token is not valid."},
		{name: "token not JSON", args: []string{"tunnel", "run", "--token", token("hello")}, wantErr: "Provided Tunnel token is not valid."},
		{name: "token without account", args: []string{"tunnel", "run", "--token",
			token(`{"t":"6ff42ae2-765d-4adf-8112-31c55c1551ef","s":"c2VjcmV0"}`)}, wantErr: "Provided Tunnel token is not valid."},
		{name: "token with a bad tunnel id", args: []string{"tunnel", "run", "--token",
			token(`{"a":"x","t":"tunnel-1","s":"c2VjcmV0"}`)}, wantErr: "Provided Tunnel token is not valid."},
		{name: "token without secret", args: []string{"tunnel", "run", "--token",
			token(`{"a":"x","t":"6ff42ae2-765d-4adf-8112-31c55c1551ef","s":""}`)}, wantErr: "Provided Tunnel token is not valid."},
		{name: "empty token", args: []string{"tunnel", "run", "--token", ""}, wantErr: "requires the ID or name", usage: true},
		{name: "url with a bad scheme", args: []string{"tunnel", "run", "--token", validToken, "--url", "ftp://localhost:21"},
			wantErr: `Error validating origin URL: unsupported scheme "ftp"`},
		{name: "url without host", args: []string{"tunnel", "run", "--token", validToken, "--url", "http://"},
			wantErr: "Error validating origin URL: http:// has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.getenv
			if getenv == nil {
				getenv = none
			}
			cmd, got, err := parseArgs(tt.args, getenv)
			if tt.wantErr != "" {
				var ue *usageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.As(err, &ue) != tt.usage {
					t.Fatalf("got error %v (usage error: %v), want one containing %q (usage error: %v)", err, errors.As(err, &ue), tt.wantErr, tt.usage)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got.token = ""
			if cmd != tt.wantCmd || got != tt.want {
				t.Errorf("got %v %+v, want %v %+v", cmd, got, tt.wantCmd, tt.want)
			}
		})
	}
}

// syncBuffer is a log sink the test reads while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var metricsLine = regexp.MustCompile(`Starting metrics server on (\S+)/metrics`)

func TestRun(t *testing.T) {
	var logs syncBuffer
	ctx, cancel := context.WithCancelCause(context.Background())
	o := options{token: validToken, url: "http://localhost:3000", metrics: "127.0.0.1:0", tunnelID: "6ff42ae2-765d-4adf-8112-31c55c1551ef"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, logger{w: &logs, now: time.Now}) }()

	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := metricsLine.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no metrics server in the log:\n%s", logs.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "cloudflared_tunnel_ha_connections 0") {
		t.Errorf("/metrics: got %d %q", code, body)
	}
	if code, body := get("/ready"); code != 503 || !strings.Contains(body, `"readyConnections":0`) {
		t.Errorf("/ready: got %d %q, want 503 with no connections", code, body)
	}

	cancel(&signalCause{sig: syscall.SIGTERM})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the signal")
	}
	log := logs.String()
	for _, want := range []string{
		" INF Starting tunnel tunnelID=6ff42ae2-765d-4adf-8112-31c55c1551ef\n",
		" WRN This cloudflared is berth's stand-in",
		" INF Settings: map[url:http://localhost:3000]\n",
		"the origin would be http://localhost:3000",
		" INF Initiating graceful shutdown due to signal terminated ...\n",
		" INF Tunnel server stopped\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log: want %q in\n%s", want, log)
		}
	}
	if strings.Contains(log, validToken) || strings.Contains(log, "c2VjcmV0") {
		t.Errorf("the log holds the token or its secret:\n%s", log)
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INF|WRN) `).MatchString(log) {
		t.Errorf("log lines are not in cloudflared's format:\n%s", log)
	}
}

// TestCommand runs the stand-in as a process: it exits 0 on SIGTERM and
// SIGINT, and 1 on a usage error.
func TestCommand(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "tunnel", "run", "--token", validToken, "--metrics", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "STANDIN_MAIN=1")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			lines := bufio.NewScanner(stderr)
			up := false
			for !up && lines.Scan() {
				up = strings.Contains(lines.Text(), "Stand-in connector up")
			}
			if !up {
				t.Fatal("the stand-in never came up")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			for lines.Scan() { // drain until it exits
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("after %v: got %v, want exit 0", sig, err)
			}
		})
	}
	t.Run("usage error", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "tunnel", "run", "--token", "bad")
		cmd.Env = append(os.Environ(), "STANDIN_MAIN=1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "ERR Provided Tunnel token is not valid.") {
			t.Errorf("got %v, %q; want exit 1 and the token error", err, out)
		}
	})
}
