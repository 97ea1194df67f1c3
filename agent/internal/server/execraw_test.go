package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/shared/wire"
)

// execFrames splits a raw exec's answer into its stdout and its outcome.
func execFrames(t *testing.T, body []byte) (stdout string, res wire.ExecRawResult) {
	t.Helper()
	var out strings.Builder
	for len(body) > 0 {
		if len(body) < wire.ExecRawFrameHeader {
			t.Fatalf("a frame header cut short: %q", body)
		}
		kind, n := wire.ParseExecRawFrame([wire.ExecRawFrameHeader]byte(body[:wire.ExecRawFrameHeader]))
		body = body[wire.ExecRawFrameHeader:]
		payload := body[:n]
		body = body[n:]
		switch kind {
		case wire.ExecRawStdout:
			out.Write(payload)
		case wire.ExecRawEnd:
			if len(body) != 0 {
				t.Errorf("%d bytes after the end frame", len(body))
			}
			if err := json.Unmarshal(payload, &res); err != nil {
				t.Fatal(err)
			}
			return out.String(), res
		default:
			t.Fatalf("frame of kind %d", kind)
		}
	}
	t.Fatal("no end frame")
	return "", res
}

func TestExecOutputLimit(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "w", Image: "img", Start: true})
	r.fake.SetExec(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, stdout, stderr io.Writer) (int, error) {
		for range 4 {
			if _, err := stdout.Write(bytes.Repeat([]byte("o"), wire.ExecOutputLimit/4+3)); err != nil {
				return 0, err
			}
		}
		_, err := io.WriteString(stderr, "e")
		return 0, err
	})
	defer r.fake.SetExec(nil)
	var got wire.ExecResult
	r.do(http.MethodPost, ctrPath(c.ID, "/exec"), wire.ExecRequest{Cmd: []string{"x"}}).decode(t, &got)
	if len(got.Stdout) != wire.ExecOutputLimit || got.StdoutDropped != 12 || string(got.Stderr) != "e" || got.StderrDropped != 0 {
		t.Errorf("got %d bytes of stdout (%d dropped), stderr %q (%d dropped); want %d, 12 dropped, \"e\", 0",
			len(got.Stdout), got.StdoutDropped, got.Stderr, got.StderrDropped, wire.ExecOutputLimit)
	}
}

func TestExecRawRoute(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "w", Image: "img", Start: true})
	header := func(req wire.ExecRequest) string {
		b, _ := json.Marshal(req)
		return string(b)
	}
	r.fake.SetExecIO(func(_ context.Context, _ wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		in, err := io.ReadAll(stdin)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(stdout, "%s got %q", strings.Join(req.Cmd, " "), in)
		fmt.Fprintf(stderr, "as %s", req.User)
		return 2, nil
	})
	defer r.fake.SetExecIO(nil)

	t.Run("input in, output and outcome out", func(t *testing.T) {
		a := r.do(http.MethodPost, ctrPath(c.ID, wire.SuffixExecRaw), "hello",
			wire.HeaderExecRequest, header(wire.ExecRequest{Cmd: []string{"cat"}, User: "dev"}), "Content-Type", wire.ContentTypeRaw)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != wire.ContentTypeExecRaw {
			t.Fatalf("got %d %q %s", a.status, a.header.Get("Content-Type"), a.body)
		}
		stdout, res := execFrames(t, a.body)
		if stdout != `cat got "hello"` {
			t.Errorf("stdout %q", stdout)
		}
		if diff := cmp.Diff(wire.ExecRawResult{ExitCode: 2, Stderr: []byte("as dev")}, res); diff != "" {
			t.Errorf("outcome (-want +got):\n%s", diff)
		}
	})

	refusals := []struct {
		name, id, header string
		wantStatus       int
		wantCode         string
	}{
		{"no request", c.ID, "", 400, wire.CodeBadRequest},
		{"not JSON", c.ID, "{", 400, wire.CodeBadRequest},
		{"an unknown field", c.ID, `{"cmd":["x"],"privileged":true}`, 400, wire.CodeBadRequest},
		{"no command", c.ID, `{"cmd":[]}`, 400, wire.CodeBadRequest},
		{"input in the request", c.ID, header(wire.ExecRequest{Cmd: []string{"x"}, Stdin: []byte("x")}), 400, wire.CodeBadRequest},
		{"no such container", "nope", header(wire.ExecRequest{Cmd: []string{"x"}}), 404, wire.CodeNotFound},
	}
	for _, tt := range refusals {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = []string{wire.HeaderExecRequest, tt.header}
			}
			a := r.do(http.MethodPost, ctrPath(tt.id, wire.SuffixExecRaw), "in", h...)
			if a.status != tt.wantStatus || a.wireError(t).Code != tt.wantCode || a.header.Get(wire.HeaderError) != tt.wantCode {
				t.Errorf("got %d %s, want %d %s", a.status, a.body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	t.Run("input that breaks off is refused, never taken as whole", func(t *testing.T) {
		// The body is shorter than its declared length: the agent sees
		// its input break off, and the exec fails.
		u, _ := url.Parse(r.url)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\nContent-Length: 100\r\n\r\nonly ten b",
			ctrPath(c.ID, wire.SuffixExecRaw), wire.HeaderExecRequest, header(wire.ExecRequest{Cmd: []string{"cat"}}))
		_ = conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "broke off") {
			t.Errorf("got %d %s, want 400: the input broke off", resp.StatusCode, body)
		}
	})
}
