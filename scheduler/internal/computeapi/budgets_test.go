package computeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/orchestrator"
	"berth/shared/httpbudget"
	"berth/shared/testutil"
)

// The refusals and budgets of issue 12 (README "Request budgets"), against
// the compute API served by a real http.Server on loopback with the
// budgets applied as the scheduler applies them (httpbudget.Server).

// budgetServer serves the API of d on loopback with timeouts t; read
// counts the bytes the server read from its connections.
type budgetServer struct {
	addr string
	read *atomic.Int64
}

func startBudgetServer(t *testing.T, d Deps, timeouts httpbudget.Timeouts) budgetServer {
	t.Helper()
	d.HTTP = timeouts
	e := newTestEchoDeps(d)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l, read: &atomic.Int64{}}
	srv := timeouts.Server(e)
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Close() })
	return budgetServer{addr: l.Addr().String(), read: cl.read}
}

// countingListener counts what is read from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, read: l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// testTimeouts are small timeouts for the slow-client tests.
func testTimeouts() httpbudget.Timeouts {
	return httpbudget.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 400 * time.Millisecond, Write: 5 * time.Second,
		Idle: 400 * time.Millisecond, Stall: 400 * time.Millisecond, MaxHeaderBytes: 8 << 10}
}

// header is a request's head as raw HTTP/1.1 text; auth adds alice's id
// and the service token.
func header(method, path string, contentLength int64, auth bool) string {
	h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", method, path)
	if contentLength >= 0 {
		h += fmt.Sprintf("Content-Length: %d\r\n", contentLength)
	} else {
		h += "Transfer-Encoding: chunked\r\n"
	}
	if auth {
		h += headerUserID + ": alice\r\n" + headerServiceToken + ": " + testToken + "\r\n"
	}
	return h + "\r\n"
}

// arrayOfObjects writes about n bytes of `[{},{},…` (no end: the server
// must not wait for one), chunk-encoded when chunked, from one reused
// chunk: writing costs no allocation.
func arrayOfObjects(w io.Writer, n int64, chunked bool) error {
	data := append([]byte("["), bytes.Repeat([]byte("{},"), 64<<10/3)...)
	chunk, start := data, 0
	if chunked {
		head := fmt.Sprintf("%x\r\n", len(data))
		chunk, start = append(append([]byte(head), data...), "\r\n"...), len(head)
	}
	for sent := int64(0); sent < n; sent += int64(len(data)) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		chunk[start] = '{' // the array's "[" only once
	}
	return nil
}

// TestBigBodyIsRefusedBeforeItIsRead is issue 12's first figure: an
// anonymous 64 MiB [{},{},…] body grew the heap to 2.9 GiB before the 401.
// Now it is refused before a byte of it is read, for < 1 MiB of
// allocation; an authenticated one past BERTH_JSON_BODY_LIMIT is a 413,
// before reading when its length is declared, after limit+1 bytes when not.
func TestBigBodyIsRefusedBeforeItIsRead(t *testing.T) {
	const size = 64 << 20
	tests := []struct {
		name       string
		head       string
		wantStatus string
		maxRead    int64  // bytes the server may read
		maxAlloc   uint64 // bytes it may allocate
	}{
		{"anonymous, length declared", header("POST", "/workspaces", size, false), "401", 64 << 10, 1 << 20},
		{"anonymous, chunked", header("POST", "/workspaces", -1, false), "401", 64 << 10, 1 << 20},
		{"authenticated, length declared", header("POST", "/workspaces", size, true), "413", 64 << 10, 1 << 20},
		// Without a declared length the limit is found by reading it into a
		// growing buffer: about 3 × the limit (more under -race).
		{"authenticated, chunked", header("POST", "/workspaces/ws1/exec", -1, true), "413", DefaultJSONBodyLimit + 128<<10, 8 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startBudgetServer(t, Deps{Workspaces: newFake(aliceWS()), ServiceToken: testToken}, httpbudget.Default())
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var status string
			cost := testutil.Measure(func() {
				sent := make(chan error, 1)
				go func() {
					if _, err := io.WriteString(conn, tt.head); err != nil {
						sent <- err
						return
					}
					sent <- arrayOfObjects(conn, size, strings.Contains(tt.head, "chunked"))
				}()
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					t.Fatalf("reading the answer: %v", err)
				}
				status = strings.Fields(line)[1]
				_ = conn.Close() // the client gives up; its write ends
				<-sent
			})
			if status != tt.wantStatus {
				t.Errorf("status %s, want %s", status, tt.wantStatus)
			}
			if got := s.read.Load(); got > tt.maxRead {
				t.Errorf("the server read %d bytes of the 64 MiB body, want at most %d", got, tt.maxRead)
			}
			if cost.Alloc > tt.maxAlloc {
				t.Errorf("refusing the body allocated %d bytes, want at most %d", cost.Alloc, tt.maxAlloc)
			}
			t.Logf("%s: %s after reading %d bytes, %d bytes allocated", tt.name, status, s.read.Load(), cost.Alloc)
		})
	}
}

// TestJSONBodyBounds: the body limit and the value count, before parsing.
func TestJSONBodyBounds(t *testing.T) {
	many := "[" + strings.Repeat("{},", maxJSONValues) + "{}]"
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"past the body limit", `{"command":"` + strings.Repeat("x", 64<<10) + `"}`, 413,
			detail("Request body too large: a JSON body carries at most 65536 bytes (64 KiB, BERTH_JSON_BODY_LIMIT)")},
		{"past the value count", many, 413,
			detail("Request body too large: a JSON body holds at most 10000 values (objects, arrays, members and elements)")},
		{"brackets inside strings do not count", `{"command":"` + strings.Repeat("[{,", 4000) + `"}`, 200,
			`{"exit_code":0,"stdout":"","stderr":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEchoDeps(Deps{Workspaces: newFake(aliceWS()), ServiceToken: testToken, JSONBodyLimit: 64 << 10})
			rec := req{method: "POST", path: "/workspaces/ws1/exec", body: tt.body}.send(e)
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
		})
	}
}

// TestHugeExponentIsBounded is issue 12's second figure: a 76-byte create
// body with two 1e640000000 numbers allocated 506 MiB. Now it is the
// bounds' 422 for a few KiB.
func TestHugeExponentIsBounded(t *testing.T) {
	body := `{"session_id":"s1","config":{"storage_gb":1e640000000,"timeout_hours":-1e640000000}}`
	e := newTestEcho(newFake(aliceWS()), testToken)
	req{method: "POST", path: "/workspaces", body: `{"session_id":"warm-up"}`}.send(e) // the router's first-use costs
	var rec *httptest.ResponseRecorder
	cost := testutil.Measure(func() { rec = req{method: "POST", path: "/workspaces", body: body}.send(e) })
	resp := rec.Result()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", resp.StatusCode)
	}
	if cost.Alloc > 256<<10 {
		t.Errorf("the create allocated %d bytes, want < 256 KiB", cost.Alloc)
	}
	// Allocation is the measure; the time only catches an expansion,
	// which takes seconds.
	if cost.Took > time.Second {
		t.Errorf("the create took %s", cost.Took)
	}
	t.Logf("huge exponents: 422 in %s, %d bytes allocated", cost.Took, cost.Alloc)
}

func TestToInt(t *testing.T) {
	tests := []struct {
		in   any
		want int64
		typ  string
	}{
		{num("42"), 42, ""},
		{num("-0"), 0, ""},
		{num("1e3"), 1000, ""},
		{num("1E+3"), 1000, ""},
		{num("120e-1"), 12, ""},
		{num("1.0"), 1, ""},
		{num("1.5"), 0, "int_from_float"},
		{num("12e-1"), 0, "int_from_float"},
		{num("0.0000000000000000000000000001e28"), 1, ""},
		{num("1e640000000"), math.MaxInt64, ""},
		{num("-1e640000000"), math.MinInt64, ""},
		{num("1e-640000000"), 0, "int_from_float"},
		{num("0e640000000"), 0, ""},
		{num("9223372036854775807"), math.MaxInt64, ""},
		{num("9223372036854775808"), math.MaxInt64, ""},
		{num("-9223372036854775808"), math.MinInt64, ""},
		{num("-9223372036854775809"), math.MinInt64, ""},
		{num("1e18446744073709551616"), math.MaxInt64, ""},
		{num("92233720368547758.07e2"), math.MaxInt64, ""},
		{num("9223372036854775.807e3"), math.MaxInt64, ""},
		{num("922337203685477580.6e1"), math.MaxInt64 - 1, ""},
		{" 7 ", 7, ""},
		{"+7", 7, ""},
		{"-00012", -12, ""},
		{strings.Repeat("9", 1<<20), math.MaxInt64, ""},
		{"-" + strings.Repeat("0", 1<<20) + "5", -5, ""},
		{"1_000", 0, "int_parsing"},
		{"0x10", 0, "int_parsing"},
		{"", 0, "int_parsing"},
		{"-", 0, "int_parsing"},
		{true, 1, ""},
		{nil, 0, "int_type"},
	}
	for _, tt := range tests {
		n, typ := toInt(tt.in)
		if n != tt.want || typ != tt.typ {
			s := fmt.Sprint(tt.in)
			t.Errorf("toInt(%.40s) = %d, %q; want %d, %q", s, n, typ, tt.want, tt.typ)
		}
	}
	cost := testutil.Measure(func() { toInt(num("1e640000000")) })
	if cost.Alloc > 1<<10 {
		t.Errorf("toInt(1e640000000) allocated %d bytes", cost.Alloc)
	}
}

func num(s string) json.Number { return json.Number(s) }

// TestSlowClientsAreCut: slow headers, a slow body, an idle keep-alive
// connection and a stalled streaming upload are each closed by the server
// once their timeout is up (slowloris).
func TestSlowClientsAreCut(t *testing.T) {
	tm := testTimeouts()
	tests := []struct {
		name  string
		limit time.Duration // the timeout that cuts the client
		play  func(conn net.Conn) error
	}{
		{"slow headers", tm.ReadHeader, func(conn net.Conn) error {
			return testutil.Dribble(conn, "GET /health HTTP/1.1\r\n", "X")
		}},
		{"slow body", tm.Read, func(conn net.Conn) error {
			return testutil.Dribble(conn, header("POST", "/workspaces/ws1/exec", 100, true)+`{"comm`, " ")
		}},
		{"idle keep-alive", tm.Idle, func(conn net.Conn) error {
			_, err := io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
			return err
		}},
		{"stalled streaming upload", tm.Stall, func(conn net.Conn) error {
			_, err := io.WriteString(conn, header("PUT", "/workspaces/ws1/files/content", 1000, true)+`{"path":"a","content":"`)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startBudgetServer(t, Deps{Workspaces: newFake(aliceWS()), ServiceToken: testToken}, tm)
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			go func() { _ = tt.play(conn) }()
			_ = conn.SetReadDeadline(time.Now().Add(tt.limit + 5*time.Second))
			_, err = io.Copy(io.Discard, conn) // until the server closes
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection open %s (timeout %s)", took, tt.limit)
			}
			if took < tt.limit/2 || took > tt.limit+2*time.Second {
				t.Errorf("closed after %s, want about %s", took, tt.limit)
			}
			t.Logf("%s: closed after %s (timeout %s)", tt.name, took, tt.limit)
		})
	}
}

// TestLongRoutesOutliveTheTimeouts: a handler that runs longer than the
// read and write timeouts after reading its body is neither cancelled nor
// cut: the body bound is lifted once the body is read, and the exec routes
// are off the write timeout (streaming).
func TestLongRoutesOutliveTheTimeouts(t *testing.T) {
	tm := testTimeouts()
	tm.Write = 500 * time.Millisecond
	f := newFake(aliceWS())
	f.streamFn = func(ctx context.Context, _ orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error) {
		select {
		case <-time.After(tm.Read + tm.Write + 200*time.Millisecond):
		case <-ctx.Done():
			return orchestrator.ExecResult{}, ctx.Err()
		}
		return orchestrator.ExecResult{ExitCode: 7}, onOutput("stdout", []byte("done"))
	}
	s := startBudgetServer(t, Deps{Workspaces: f, ServiceToken: testToken}, tm)
	r, _ := http.NewRequest("POST", "http://"+s.addr+"/workspaces/ws1/exec", strings.NewReader(`{"command":"sleep 1"}`))
	r.Header.Set(headerUserID, "alice")
	r.Header.Set(headerServiceToken, testToken)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if diff := cmp.Diff(`{"exit_code":7,"stdout":"done","stderr":""}`, string(body)); resp.StatusCode != 200 || diff != "" {
		t.Errorf("status %d, body (-want +got):\n%s", resp.StatusCode, diff)
	}
}

// TestPerUserLimits: past BERTH_USER_EXEC_LIMIT execs, or
// BERTH_USER_TRANSFER_LIMIT file transfers, running at once for one user,
// the next is 429 with a detail naming the limit; other users are not
// affected, and a place freed is usable again.
func TestPerUserLimits(t *testing.T) {
	bob := aliceWS()
	bob.ID, bob.UserID = "bobs", "bob"
	f := newFake(aliceWS(), bob)
	release := make(chan struct{})
	var running atomic.Int32
	f.streamFn = func(ctx context.Context, _ orchestrator.ExecRequest, _ func(string, []byte) error) (orchestrator.ExecResult, error) {
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return orchestrator.ExecResult{}, nil
	}
	s := startBudgetServer(t, Deps{Workspaces: f, ServiceToken: testToken, UserExecs: 2, UserTransfers: 1}, httpbudget.Default())
	send := func(user, method, path, body string) (int, string) {
		r, _ := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
		r.Header.Set(headerUserID, user)
		r.Header.Set(headerServiceToken, testToken)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	exec := func(user, id string) (int, string) {
		return send(user, "POST", "/workspaces/"+id+"/exec", `{"command":"sleep"}`)
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); exec("alice", "ws1") }()
	}
	testutil.Eventually(t, 5*time.Second, "two execs running", func() bool { return running.Load() == 2 })
	status, body := exec("alice", "ws1")
	want := `{"detail":"Too many commands running for this user: at most 2 at once (BERTH_USER_EXEC_LIMIT). Try again when one has finished."}`
	if status != 429 || body != want {
		t.Errorf("third exec: %d %s, want 429 %s", status, body, want)
	}
	wg.Add(1)
	go func() { defer wg.Done(); exec("bob", "bobs") }() // bob has his own places
	testutil.Eventually(t, 5*time.Second, "bob's exec running", func() bool { return running.Load() == 3 })
	close(release)
	wg.Wait()
	if status, body := exec("alice", "ws1"); status != 200 {
		t.Errorf("exec after the others ended: %d %s", status, body)
	}

	// A file write holds its transfer place while its body arrives.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, header("PUT", "/workspaces/ws1/files/content", 1000, true)+`{"path":"a","content":"`); err != nil {
		t.Fatal(err)
	}
	var status2 int
	var body2 string
	testutil.Eventually(t, 5*time.Second, "the second transfer refused", func() bool {
		status2, body2 = send("alice", "GET", "/workspaces/ws1/files/content?path=a", "")
		return status2 == 429
	})
	want = `{"detail":"Too many file transfers running for this user: at most 1 at once (BERTH_USER_TRANSFER_LIMIT). Try again when one has finished."}`
	if body2 != want {
		t.Errorf("second transfer: %d %s, want 429 %s", status2, body2, want)
	}
}

// waitFor polls cond until it holds, failing t after 5 s.
// TestServiceTokenRotation: INTERNAL_SERVICE_TOKEN and
// INTERNAL_SERVICE_TOKEN_NEXT are both accepted, on the user routes, the
// token-only routes and as the proxy's bearer credential.
func TestServiceTokenRotation(t *testing.T) {
	e := newTestEchoDeps(Deps{Workspaces: newFake(aliceWS()), ServiceToken: "old-token", ServiceTokenNext: "new-token"})
	for _, tt := range []struct {
		token, path string
		want        int
	}{
		{"old-token", "/workspaces/ws1", 200}, {"new-token", "/workspaces/ws1", 200}, {"other", "/workspaces/ws1", 401},
		{"old-token", "/", 200}, {"new-token", "/", 200}, {"other", "/", 401},
	} {
		rec := req{method: "GET", path: tt.path, header: map[string]string{headerServiceToken: tt.token}}.send(e)
		if rec.Code != tt.want {
			t.Errorf("GET %s with %s: %d, want %d", tt.path, tt.token, rec.Code, tt.want)
		}
	}
	a := New(Deps{ServiceToken: "old-token", ServiceTokenNext: "new-token"})
	for tok, want := range map[string]bool{"Bearer old-token": true, "Bearer new-token": true, "Bearer other": false} {
		if got := a.isServiceCredential(tok); got != want {
			t.Errorf("isServiceCredential(%q) = %v", tok, got)
		}
	}
}
