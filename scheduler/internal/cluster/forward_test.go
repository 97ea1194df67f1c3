package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
)

// serveNode serves a node's API the way the scheduler does: its main
// listener (an httptest server) and the raft port's HTTP both go through
// Forward to an app that names the scheduler that ran it and, on POST,
// writes to its registry.
func serveNode(t *testing.T, n *testNode) *httptest.Server {
	t.Helper()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if err := reserve(strings.TrimPrefix(r.URL.Path, "/w/"))(n.db); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
		}
		_, _ = io.WriteString(w, n.id+" "+r.Header.Get(ForwardedHeader))
	})
	local := func(r *http.Request) bool { return r.URL.Path == "/health" }
	srv := &http.Server{Handler: n.node.PeerHandler(500*time.Millisecond, func(string) http.Handler { return app }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(n.node.HTTPListener()) }()
	ts := httptest.NewServer(n.node.Forward(Route{Listener: "main", Local: local, Wait: 500 * time.Millisecond}, app))
	n.onStop = append(n.onStop, srv.Close, func() error { ts.Close(); return nil })
	return ts
}

func call(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// TestJoinAndForward: two schedulers join through a member (one of them
// through a follower); a request to a follower is served by the leader,
// writes included; local routes stay local; a forwarded request that
// reaches a follower is refused, not sent on; with no leader a request
// waits, then gets a 503 that says why.
func TestJoinAndForward(t *testing.T) {
	pki := testutil.NewPKI(t)
	var nodes []*testNode
	for _, id := range []string{"sched-1", "sched-2", "sched-3"} {
		nodes = append(nodes, startNode(t, pki, id, t.TempDir(), "127.0.0.1:0"))
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, serveNode(t, n).URL)
	}
	if err := nodes[0].node.Bootstrap(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nodes[1].node.Join(ctx, nodes[0].addr); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].node.Join(ctx, nodes[1].addr); err != nil { // through a follower
		t.Fatal(err)
	}
	s, err := nodes[0].node.Status()
	if err != nil || len(s.Members) != 3 {
		t.Fatalf("status %+v, %v; want 3 members", s, err)
	}
	write(t, nodes, func(db *registry.DB) error {
		_, err := db.CreateServer(context.Background(), registry.Server{ID: "s"})
		return err
	})

	if code, body := call(t, "POST", urls[2]+"/w/x1", nil); code != 200 || body != "sched-1 sched-3" {
		t.Errorf("POST through sched-3: %d %q; want 200 from sched-1, forwarded by sched-3", code, body)
	}
	waitWorkspaces(t, nodes[2], 1)
	if code, body := call(t, "GET", urls[1]+"/health", nil); code != 200 || body != "sched-2" {
		t.Errorf("GET /health on sched-2: %d %q; want it served there", code, body)
	}
	if code, body := call(t, "GET", urls[0]+"/x", nil); code != 200 || body != "sched-1" {
		t.Errorf("GET on the leader: %d %q", code, body)
	}
	// A client cannot pose as a scheduler: the header is dropped and the
	// request forwarded as any other; the internal paths are not there.
	if code, body := call(t, "GET", urls[1]+"/x", map[string]string{ForwardedHeader: "sched-9"}); code != 200 || body != "sched-1 sched-2" {
		t.Errorf("a client's %s at a follower: %d %q; want it forwarded by sched-2", ForwardedHeader, code, body)
	}
	if code, body := call(t, "POST", urls[1]+joinPath, nil); code != 404 {
		t.Errorf("POST %s on a public listener: %d %q; want 404", joinPath, code, body)
	}
	// A request another scheduler forwarded, at a follower's raft port, is
	// not sent on a second hop.
	peer := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return nodes[2].node.mux.dial(ctx, addr, protoHTTP)
	}}}
	req, _ := http.NewRequest("GET", "http://"+nodes[1].addr+"/x", nil)
	req.Header.Set(ForwardedHeader, "sched-3")
	res, err := peer.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(b), "does not lead") {
		t.Errorf("a forwarded request at a follower's raft port: %d %s; want 503", res.StatusCode, b)
	}

	// Two of three gone: no leader can be elected.
	nodes[0].stop()
	nodes[1].stop()
	start := time.Now()
	code, body := call(t, "GET", urls[2]+"/x", nil)
	var detail struct{ Detail string }
	_ = json.Unmarshal([]byte(body), &detail)
	// It still believes sched-1 leads (until its heartbeat timeout) or
	// knows no leader: either way a 503 that says which, and to retry.
	says := strings.Contains(detail.Detail, "No scheduler leader") || strings.Contains(detail.Detail, "leader sched-1 cannot be reached")
	if code != 503 || !says || !strings.HasSuffix(detail.Detail, "retry.") {
		t.Errorf("with no leader: %d %q; want 503 that says there is no leader, or none reachable", code, body)
	}
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Errorf("answered after %s; want a wait for a leader first", waited)
	}
}

// TestJoinRefusesAnotherAddress: a scheduler cannot join under an address
// its certificate does not name.
func TestJoinRefusesAnotherAddress(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := startNode(t, pki, "sched-1", t.TempDir(), "127.0.0.1:0")
	serveNode(t, a)
	if err := a.node.Bootstrap(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, pki, "sched-2", t.TempDir(), "127.0.0.1:0")
	b.node.cfg.Advertise = "elsewhere.example:7950"
	b.node.mux.adv = hostAddr("elsewhere.example:7950")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.node.Join(ctx, a.addr)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("join under another address: %v; want 403", err)
	}
}
