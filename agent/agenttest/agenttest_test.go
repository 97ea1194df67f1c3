package agenttest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/agent/agenttest"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// client speaks to one agent as the scheduler does: mTLS with a scheduler
// certificate of the same CA, the agent's server id as the expected name.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, pki *testutil.PKI, a *agenttest.Agent, role string) *client {
	t.Helper()
	cert, key := pki.Issue("client-"+role, role, false)
	cfg, err := mtls.ClientConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: mtls.ForServer(cfg, a.ServerID)}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: "https://" + a.Addr(), http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type answer struct {
	status int
	body   []byte
}

func (c *client) do(method, path string, body any, header ...string) answer {
	c.t.Helper()
	a, err := c.try(method, path, body, header...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func (c *client) try(method, path string, body any, header ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: raw}, err
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
}

func (a answer) code(t *testing.T) string {
	t.Helper()
	var e wire.Error
	a.decode(t, &e)
	return e.Code
}

// events opens the agent's event stream; it ends with ctx.
func (c *client) events(ctx context.Context) (*bufio.Scanner, func()) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+wire.PathEvents, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	tr := c.http.Transport
	resp, err := (&http.Client{Transport: tr}).Do(req) //nolint:bodyclose // no overall timeout: a stream; the returned func closes it
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("events: status %d", resp.StatusCode)
	}
	return bufio.NewScanner(resp.Body), func() { resp.Body.Close() }
}

func setup(t *testing.T) (*agenttest.Agent, *client) {
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	return a, newClient(t, pki, a, wire.RoleScheduler)
}

var createReq = wire.CreateContainerRequest{Name: "workspace-w1", Image: "berth/workspace:dev", Start: true,
	WorkspaceID: "w1", Epoch: 3, Resources: wire.Resources{CPU: 1, MemoryMB: 1024}}

func (c *client) create(req wire.CreateContainerRequest) wire.Container {
	c.t.Helper()
	a := c.do(http.MethodPost, wire.PathContainers, req)
	if a.status != http.StatusCreated {
		c.t.Fatalf("create: %d %s", a.status, a.body)
	}
	var ctr wire.Container
	a.decode(c.t, &ctr)
	return ctr
}

func TestMTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	t.Run("scheduler certificate", func(t *testing.T) {
		var h wire.Health
		res := newClient(t, pki, a, wire.RoleScheduler).do(http.MethodGet, wire.PathHealth, nil)
		res.decode(t, &h)
		if res.status != http.StatusOK || h.ServerID != "ws-1" || !h.DockerOK {
			t.Errorf("got %d %+v, want 200 from ws-1 with docker ok", res.status, h)
		}
	})
	t.Run("a peer agent may only fetch home archives", func(t *testing.T) {
		peer := newClient(t, pki, a, wire.RoleAgent)
		for _, path := range []string{wire.PathHealth, wire.PathContainers, "/metrics"} {
			if res := peer.do(http.MethodGet, path, nil); res.status != http.StatusForbidden {
				t.Errorf("GET %s with an agent certificate: %d %s, want 403", path, res.status, res.body)
			}
		}
		if res := peer.do(http.MethodPost, wire.PathHomeExports, wire.HomeExport{Path: "x", Token: strings.Repeat("a", 40), TTLSeconds: 60}); res.status != http.StatusForbidden {
			t.Errorf("export with an agent certificate: %d, want 403", res.status)
		}
		if res := peer.do(http.MethodGet, wire.PathHomeArchive, nil, wire.HeaderHomeToken, strings.Repeat("b", 64)); res.status != http.StatusForbidden {
			t.Errorf("archive with an unknown token: %d %s, want 403", res.status, res.body)
		}
	})
	t.Run("another role is refused", func(t *testing.T) {
		if _, err := newClient(t, pki, a, "berth-admin").try(http.MethodGet, wire.PathHealth, nil); err == nil {
			t.Error("a certificate of another role was accepted, want a TLS failure")
		}
	})
	t.Run("no client certificate is refused", func(t *testing.T) {
		pool, err := mtls.LoadCA(pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "ws-1"}}}
		if resp, err := c.Get("https://" + a.Addr() + wire.PathHealth); err == nil {
			resp.Body.Close()
			t.Errorf("got status %d without a client certificate, want a TLS failure", resp.StatusCode)
		}
	})
}

func TestContainersThroughTheRealAPI(t *testing.T) {
	a, c := setup(t)
	ctr := c.create(createReq)
	if diff := cmp.Diff([]wire.Container{ctr}, a.Containers()); diff != "" {
		t.Errorf("containers (-API +agent):\n%s", diff)
	}
	if got := ctr.Labels[wire.LabelServerID]; got != "ws-1" {
		t.Errorf("server id label %q, want ws-1", got)
	}
	// The epoch fence of the real API.
	if res := c.do(http.MethodPost, "/v1/containers/"+ctr.ID+"/stop", nil, wire.HeaderEpoch, "2"); res.status != http.StatusConflict || res.code(t) != wire.CodeStaleEpoch {
		t.Errorf("stale stop: got %d %s, want 409 stale_epoch", res.status, res.body)
	}
	// Its validation.
	bad := createReq
	bad.Name, bad.Privileged = "evil", true
	if res := c.do(http.MethodPost, wire.PathContainers, bad); res.status != http.StatusBadRequest {
		t.Errorf("privileged create: got %d, want 400", res.status)
	}
	var exec wire.ExecResult
	c.do(http.MethodPost, "/v1/containers/"+ctr.ID+"/exec", wire.ExecRequest{Cmd: []string{"echo", "ok"}}).decode(t, &exec)
	if string(exec.Stdout) != "echo ok\n" {
		t.Errorf("exec stdout %q, want the echoed command", exec.Stdout)
	}
	if res := c.do(http.MethodDelete, wire.PathData+"?path=workspaces/w1", nil); res.status != http.StatusNoContent {
		t.Errorf("data removal: %d %s", res.status, res.body)
	}
	if diff := cmp.Diff([]string{"workspaces/w1"}, a.RemovedData()); diff != "" {
		t.Errorf("removed data (-want +got):\n%s", diff)
	}
	if res := c.do(http.MethodDelete, "/v1/containers/"+ctr.ID+"?force=true", nil); res.status != http.StatusNoContent {
		t.Errorf("remove: %d %s", res.status, res.body)
	}
	if n := len(a.Containers()); n != 0 {
		t.Errorf("%d containers after the removal, want 0", n)
	}
}

func TestFailCreate(t *testing.T) {
	tests := []struct {
		code       string
		wantStatus int
	}{
		{wire.CodeDocker, http.StatusBadGateway},
		{wire.CodeNoImage, http.StatusNotFound},
		{wire.CodeStartFailed, http.StatusBadGateway},
		{wire.CodeConflict, http.StatusConflict},
		{wire.CodeTimeout, http.StatusGatewayTimeout},
		{wire.CodeBadRequest, http.StatusBadRequest},
		{wire.CodeInternal, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			a, c := setup(t)
			a.FailCreate(tt.code)
			for range 2 { // every create, not only the next
				res := c.do(http.MethodPost, wire.PathContainers, createReq)
				if res.status != tt.wantStatus || res.code(t) != tt.code {
					t.Fatalf("got %d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.code)
				}
			}
			if n := len(a.Containers()); n != 0 {
				t.Errorf("%d containers after failed creates, want 0", n)
			}
			a.FailCreate("")
			c.create(createReq)
		})
	}
	t.Run("next only", func(t *testing.T) {
		a, c := setup(t)
		a.FailNextCreate(wire.CodeDocker)
		if res := c.do(http.MethodPost, wire.PathContainers, createReq); res.code(t) != wire.CodeDocker {
			t.Errorf("first: got %s, want docker_error", res.body)
		}
		c.create(createReq)
	})
}

func TestFailUpdateAndPull(t *testing.T) {
	a, c := setup(t)
	ctr := c.create(createReq)
	a.FailUpdate(wire.CodeDocker)
	if res := c.do(http.MethodPost, "/v1/containers/"+ctr.ID+"/update", wire.Resources{CPU: 2}); res.status != http.StatusBadGateway || res.code(t) != wire.CodeDocker {
		t.Errorf("update: got %d %s, want 502 docker_error", res.status, res.body)
	}
	a.FailUpdate("")
	if res := c.do(http.MethodPost, "/v1/containers/"+ctr.ID+"/update", wire.Resources{CPU: 2}); res.status != http.StatusNoContent {
		t.Errorf("update after clearing: %d %s", res.status, res.body)
	}

	a.FailPull("pull access denied for nope")
	res := c.do(http.MethodPost, wire.PathImagePull, wire.PullRequest{Image: "nope", Tag: "1"})
	sc := bufio.NewScanner(bytes.NewReader(res.body))
	var last wire.PullProgress
	for sc.Scan() {
		last = wire.PullProgress{}
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatal(err)
		}
	}
	if want := (wire.PullProgress{Done: true, Error: "pull access denied for nope"}); last != want {
		t.Errorf("final pull line %+v, want %+v", last, want)
	}
}

func TestSetDown(t *testing.T) {
	a, c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, closeStream := c.events(ctx)
	defer closeStream()

	a.SetDown(true)
	for _, p := range []string{wire.PathHealth, wire.PathCapacity, wire.PathContainers, "/v1/containers/x/stats"} {
		if res := c.do(http.MethodGet, p, nil); res.status != http.StatusServiceUnavailable || res.code(t) != wire.CodeUnavailable {
			t.Errorf("%s while down: got %d %s, want 503 unavailable", p, res.status, res.body)
		}
	}
	for sc.Scan() { // the open stream ends
	}
	a.SetDown(false)
	if res := c.do(http.MethodGet, wire.PathHealth, nil); res.status != http.StatusOK {
		t.Errorf("health after coming back: %d", res.status)
	}
}

func TestSetDockerDown(t *testing.T) {
	a, c := setup(t)
	a.SetDockerDown(true)
	var h wire.Health
	c.do(http.MethodGet, wire.PathHealth, nil).decode(t, &h)
	if h.Status != "degraded" || h.DockerOK {
		t.Errorf("health %+v, want degraded without docker", h)
	}
	if res := c.do(http.MethodPost, wire.PathContainers, createReq); res.status != http.StatusBadGateway || res.code(t) != wire.CodeDocker {
		t.Errorf("create: got %d %s, want 502 docker_error", res.status, res.body)
	}
	a.SetDockerDown(false)
	c.create(createReq)
}

func TestClose(t *testing.T) {
	a, c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, closeStream := c.events(ctx) // an open stream does not hold Close up
	defer closeStream()
	start := time.Now()
	a.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %s with a stream open", d)
	}
	for sc.Scan() {
	}
	if _, err := net.DialTimeout("tcp", a.Addr(), time.Second); err == nil {
		t.Error("something still listens on the agent's address after Close")
	}
	if _, err := c.try(http.MethodGet, wire.PathHealth, nil); err == nil {
		t.Error("a request succeeded after Close")
	}
	a.Close() // idempotent
}

// Wrap lets a test hold creates, as the scheduler's race tests do.
func TestWrapHoldsCreates(t *testing.T) {
	a, c := setup(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			if q.Method == http.MethodPost && q.URL.Path == wire.PathContainers {
				entered <- struct{}{}
				<-release
			}
			next.ServeHTTP(w, q)
		})
	})
	done := make(chan answer, 1)
	go func() {
		res, _ := c.try(http.MethodPost, wire.PathContainers, createReq)
		done <- res
	}()
	<-entered
	if n := len(a.Containers()); n != 0 {
		t.Errorf("%d containers while the create is held, want 0", n)
	}
	close(release)
	if res := <-done; res.status != http.StatusCreated {
		t.Errorf("released create: %d %s", res.status, res.body)
	}
	a.Wrap(nil)
	if res := c.do(http.MethodGet, wire.PathContainers, nil); res.status != http.StatusOK {
		t.Errorf("after unwrapping: %d", res.status)
	}
}

func TestCapacity(t *testing.T) {
	a, c := setup(t)
	c.create(createReq)
	stopped := createReq
	stopped.Name, stopped.Start, stopped.WorkspaceID = "workspace-w2", false, "w2"
	c.create(stopped)
	ignoreTime := cmpopts.IgnoreFields(wire.Capacity{}, "SampledAt")

	want := agenttest.DefaultCapacity("ws-1")
	want.Containers, want.ContainersRunning, want.Workspaces, want.Images = 2, 1, 2, 1
	want.ReservedCPU, want.ReservedMemoryMB = 2, 2048 // running and created both hold their reservation
	var got wire.Capacity
	c.do(http.MethodGet, wire.PathCapacity, nil).decode(t, &got)
	if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
		t.Errorf("capacity (-want +got):\n%s", diff)
	}
	if got.SampledAt.IsZero() {
		t.Error("SampledAt is zero")
	}

	host := agenttest.DefaultCapacity("ws-1")
	host.CPUCores, host.MemoryAvailableMB = 16, 100
	a.SetCapacity(host)
	c.do(http.MethodGet, wire.PathCapacity, nil).decode(t, &got)
	if got.CPUCores != 16 || got.MemoryAvailableMB != 100 || got.Workspaces != 2 {
		t.Errorf("after SetCapacity: %+v, want 16 cores, 100 MB available and still 2 workspaces", got)
	}
}

// Exit and OOM reach the scheduler as events on the stream.
func TestCrashEvents(t *testing.T) {
	a, c := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, closeStream := c.events(ctx)
	defer closeStream()
	ctr := c.create(createReq)
	if err := a.Exit(ctr.ID, 1); err != nil {
		t.Fatal(err)
	}
	c.do(http.MethodPost, "/v1/containers/"+ctr.ID+"/start", nil)
	if err := a.OOM(ctr.ID); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		Action string
		Exit   int
	}
	var got []ev
	for len(got) < 6 && sc.Scan() {
		var e wire.ContainerEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev{e.Action, e.ExitCode})
	}
	want := []ev{{"create", 0}, {"start", 0}, {"die", 1}, {"start", 0}, {"oom", 0}, {"die", 137}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	var inspected wire.Container
	c.do(http.MethodGet, "/v1/containers/"+ctr.ID, nil).decode(t, &inspected)
	if !inspected.OOMKilled || inspected.State != "exited" {
		t.Errorf("after OOM: %+v, want exited and OOM-killed", inspected)
	}
	if err := a.Exit("nope", 1); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Exit of a missing container: %v, want not found", err)
	}
}

func TestLastContact(t *testing.T) {
	a, c := setup(t)
	before := a.LastContact()
	deadline := time.Now().Add(5 * time.Second)
	for !a.LastContact().After(before) {
		if time.Now().After(deadline) {
			t.Fatal("LastContact did not move within 5s of requests")
		}
		c.do(http.MethodGet, wire.PathHealth, nil)
	}
	a.SetDown(true)
	frozen := a.LastContact()
	c.do(http.MethodGet, wire.PathHealth, nil)
	if !a.LastContact().Equal(frozen) {
		t.Error("a request refused by SetDown counted as contact")
	}
}

// A home moves agent → agent: the scheduler registers an export on the
// source and asks the target to import it; the target fetches it with its
// own agent certificate, verifies it and puts it in place. The export's
// token is the only key: the archive is refused without it.
func TestHomeImportBetweenAgents(t *testing.T) {
	pki := testutil.NewPKI(t)
	src, dst := agenttest.Start(t, pki, "ws-1"), agenttest.Start(t, pki, "ws-2")
	home := filepath.Join(src.DataDir, "workspaces", "w1", "home")
	if err := os.MkdirAll(filepath.Join(home, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.txt": "alpha\n", "src/b.go": "package b\n"}
	for name, content := range want {
		if err := os.WriteFile(filepath.Join(home, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scheduler := newClient(t, pki, src, wire.RoleScheduler)
	token := strings.Repeat("7", 64)
	if res := scheduler.do(http.MethodPost, wire.PathHomeExports, wire.HomeExport{Path: "workspaces/w1/home", Token: token, TTLSeconds: 60}); res.status != http.StatusNoContent {
		t.Fatalf("export: %d %s", res.status, res.body)
	}
	if res := scheduler.do(http.MethodPost, wire.PathHomeExports, wire.HomeExport{Path: "workspaces/none/home", Token: token, TTLSeconds: 60}); res.status != http.StatusNotFound {
		t.Errorf("export of a missing home: %d %s, want 404", res.status, res.body)
	}
	if res := scheduler.do(http.MethodPost, wire.PathHomeExports, wire.HomeExport{Path: "../../etc", Token: token, TTLSeconds: 60}); res.status != http.StatusBadRequest {
		t.Errorf("export outside the data directory: %d %s, want 400", res.status, res.body)
	}

	imp := func(tok string) []wire.HomeProgress {
		res := newClient(t, pki, dst, wire.RoleScheduler).do(http.MethodPost, wire.PathHomeImports, wire.HomeImport{
			Path: "workspaces/w1/home", SourceServerID: "ws-1", SourceAddr: src.Addr(), Token: tok})
		if res.status != http.StatusOK {
			t.Fatalf("import: %d %s", res.status, res.body)
		}
		var lines []wire.HomeProgress
		sc := bufio.NewScanner(bytes.NewReader(res.body))
		for sc.Scan() {
			var p wire.HomeProgress
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, p)
		}
		return lines
	}
	lines := imp(strings.Repeat("0", 64))
	if last := lines[len(lines)-1]; !last.Done || last.Code != wire.CodeSourceFailed {
		t.Errorf("import with a wrong token ended %+v, want source_failed", last)
	}
	copied := filepath.Join(dst.DataDir, "workspaces", "w1", "home")
	if _, err := os.Stat(copied); !os.IsNotExist(err) {
		t.Errorf("a refused import left %s (%v)", copied, err)
	}
	lines = imp(token)
	last := lines[len(lines)-1]
	if !last.Done || last.Code != "" || !strings.HasPrefix(last.Digest, wire.HomeDigestPrefix) || last.Bytes != int64(len("alpha\n")+len("package b\n")) {
		t.Fatalf("import ended %+v, want done with a digest", last)
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(copied, name))
		if err != nil || string(got) != content {
			t.Errorf("%s on the target: %q, %v; want %q", name, got, err, content)
		}
	}
	if _, err := os.Stat(copied + ".incoming"); !os.IsNotExist(err) {
		t.Errorf("the staging directory is left (%v)", err)
	}
}
