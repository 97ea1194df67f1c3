package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"berth/shared/testutil"
)

// This file holds what the contract, placement and concurrency suites share:
// an HTTP client of the compute API with its tokens, workspace create and
// delete helpers that clean up after themselves, views of the hosts' own
// dockerds, polling with a deadline, and a scheduler process started from
// the working tree against the compose cluster's agents.

// ---------------------------------------------------------------------------
// Compute API client

// serviceToken is the compose scheduler's INTERNAL_SERVICE_TOKEN.
func serviceToken() string {
	if t := os.Getenv("INTERNAL_SERVICE_TOKEN"); t != "" {
		return t
	}
	return "dev-service-token"
}

// client talks to one scheduler's compute API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(base, token string) *client {
	// Creates wait for real Docker work; the 50-way concurrency test queues
	// behind two agents, so the timeout is generous. It bounds a hung
	// scheduler, nothing else.
	return &client{base: base, token: token, http: &http.Client{Timeout: 3 * time.Minute}}
}

// composeAPI is the compose cluster's scheduler.
func composeAPI() *client { return newClient(schedulerURL, serviceToken()) }

// caller is a client with the headers of one caller. Its methods return
// copies, so callers derive variants without touching the original.
type caller struct {
	c   *client
	hdr http.Header
}

// as is a caller that sends the service token and X-User-ID user, as the
// podex API does.
func (c *client) as(user string) caller {
	h := http.Header{}
	h.Set("X-Internal-Service-Token", c.token)
	h.Set("X-User-ID", user)
	return caller{c: c, hdr: h}
}

// anonymous sends no header at all.
func (c *client) anonymous() caller { return caller{c: c, hdr: http.Header{}} }

func (k caller) set(name, value string) caller {
	h := k.hdr.Clone()
	h.Set(name, value)
	return caller{c: k.c, hdr: h}
}

func (k caller) without(name string) caller {
	h := k.hdr.Clone()
	h.Del(name)
	return caller{c: k.c, hdr: h}
}

// response is a whole HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// detail is the string `detail` of an error body, or "" when there is none
// (or it is not a string, as in a 422).
func (r response) detail() string {
	var v struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(r.body, &v) != nil {
		return ""
	}
	s, _ := v.Detail.(string)
	return s
}

// fieldErrors is the detail list of a 422 (framework format).
func (r response) fieldErrors(t *testing.T) []map[string]any {
	t.Helper()
	var v struct {
		Detail []map[string]any `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("422 body is not {\"detail\": [...]}: %v: %s", err, r.body)
	}
	return v.Detail
}

// object decodes the body as a JSON object, numbers kept exact.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

// into decodes the body into v.
func (r response) into(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, r.body)
	}
}

// do sends a request. body is nil (none), a string or []byte (sent as is),
// or a value sent as JSON; a body goes with Content-Type application/json.
func (k caller) do(t *testing.T, method, path string, body any) response {
	t.Helper()
	r, err := k.tryDo(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// tryDo is do without a *testing.T, for goroutines and cleanups.
func (k caller) tryDo(method, path string, body any) (response, error) {
	resp, err := k.tryOpen(method, path, body)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// open sends a request and returns the response with its body unread.
func (k caller) open(t *testing.T, method, path string, body any) *http.Response {
	t.Helper()
	resp, err := k.tryOpen(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (k caller) tryOpen(method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, k.c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header = k.hdr.Clone()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return k.c.http.Do(req)
}

// ---------------------------------------------------------------------------
// Workspaces

// info is the WorkspaceInfo fields the suites read.
type info struct {
	ID           string            `json:"id"`
	UserID       string            `json:"user_id"`
	SessionID    string            `json:"session_id"`
	Status       string            `json:"status"`
	Tier         string            `json:"tier"`
	Host         string            `json:"host"`
	Port         int               `json:"port"`
	ServerID     string            `json:"server_id"`
	ContainerID  string            `json:"container_id"`
	CreatedAt    string            `json:"created_at"`
	LastActivity string            `json:"last_activity"`
	Environment  map[string]string `json:"environment"`
	Metadata     map[string]any    `json:"metadata"`
}

var runSeq atomic.Int64

// uniqueID is a fresh id for this run: prefix, the run's start time and a
// sequence number, all safe characters.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, runStamp, runSeq.Add(1))
}

var runStamp = strconv.FormatInt(time.Now().UnixNano(), 36)

// createBody is a WorkspaceCreateRequest.
func createBody(session, id string, config map[string]any) map[string]any {
	b := map[string]any{"session_id": session, "workspace_id": id}
	if config != nil {
		b["config"] = config
	}
	return b
}

// starter is the config the podex API sends for a default workspace.
func starter() map[string]any { return map[string]any{"tier": "starter", "repos": []string{}} }

// create sends POST /workspaces. The id is deleted when the test ends, even
// if this create fails or the test fails after it.
func (k caller) create(t *testing.T, session, id string, config map[string]any) response {
	t.Helper()
	k.deleteOnCleanup(t, id)
	return k.do(t, http.MethodPost, "/workspaces", createBody(session, id, config))
}

// mustCreate creates a starter-like workspace and wants 201 running.
func (k caller) mustCreate(t *testing.T, session, id string, config map[string]any) info {
	t.Helper()
	if config == nil {
		config = starter()
	}
	r := k.create(t, session, id, config)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: got %s, want 201", id, r)
	}
	var ws info
	r.into(t, &ws)
	if ws.ID != id || ws.Status != "running" || ws.ContainerID == "" || ws.ServerID == "" {
		t.Fatalf("create %s: got %s, want it running with a server and container", id, r.body)
	}
	return ws
}

// get is GET /workspaces/{id}.
func (k caller) get(t *testing.T, id string) response {
	t.Helper()
	return k.do(t, http.MethodGet, "/workspaces/"+id, nil)
}

// status is the status GET reports; it wants 200.
func (k caller) status(t *testing.T, id string) string {
	t.Helper()
	r := k.get(t, id)
	if r.status != http.StatusOK {
		t.Fatalf("GET /workspaces/%s: got %s, want 200", id, r)
	}
	var ws info
	r.into(t, &ws)
	return ws.Status
}

// deleteOnCleanup deletes the workspace when the test ends (204 or 404 are
// both fine: the test may have deleted it) and removes its data directory
// from the hosts, so runs leave nothing behind.
func (k caller) deleteOnCleanup(t *testing.T, id string) {
	t.Helper()
	t.Cleanup(func() {
		r, err := k.tryDo(http.MethodDelete, "/workspaces/"+id, nil)
		switch {
		case err != nil:
			t.Errorf("cleanup: DELETE /workspaces/%s: %v", id, err)
		case r.status != http.StatusNoContent && r.status != http.StatusNotFound:
			t.Errorf("cleanup: DELETE /workspaces/%s: got %s, want 204 or 404", id, r)
		}
		removeDataDirs(id)
	})
}

// exec is POST …/exec, wanting 200.
func (k caller) exec(t *testing.T, id string, body map[string]any) execResult {
	t.Helper()
	r := k.do(t, http.MethodPost, "/workspaces/"+id+"/exec", body)
	if r.status != http.StatusOK {
		t.Fatalf("exec %v: got %s, want 200", body, r)
	}
	var res execResult
	r.into(t, &res)
	return res
}

// execResult is WorkspaceExecResponse.
type execResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// isoUTC is pydantic v2's datetime: UTC with Z, microseconds only when not 0.
var isoUTC = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$`)

func parseISO(t *testing.T, s string) time.Time {
	t.Helper()
	if !isoUTC.MatchString(s) {
		t.Fatalf("datetime %q: want YYYY-MM-DDTHH:MM:SS[.ffffff]Z", s)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("datetime %q: %v", s, err)
	}
	return tm
}

// ---------------------------------------------------------------------------
// The hosts' own dockerds

// dataRoot is where the agents keep workspace data, inside each host.
const dataRoot = "/var/lib/berth/workspaces"

// workspaceContainers returns, per workspace id, the state of the berth
// workspace containers in host's own dockerd (all states); extra are more
// `docker ps` filters, e.g. "label=berth.cluster=x".
func workspaceContainers(t *testing.T, host string, extra ...string) map[string]string {
	t.Helper()
	args := []string{"ps", "-a", "--filter", "label=podex.workspace=true"}
	for _, f := range extra {
		args = append(args, "--filter", f)
	}
	args = append(args, "--format", `{{.Label "podex.workspace_id"}} {{.State}}`)
	out := map[string]string{}
	for _, line := range strings.Split(innerDocker(t, host, args...), "\n") {
		if id, state, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			out[id] = state
		}
	}
	return out
}

// containerState is the workspace's container state in host's dockerd, ""
// when there is no such container.
func containerState(t *testing.T, host, id string) string {
	t.Helper()
	return workspaceContainers(t, host, "label=podex.workspace_id="+id)[id]
}

// dataDirExists reports whether the workspace's home directory exists on
// the host (checked in the host container, not through the agent).
func dataDirExists(t *testing.T, host, id string) bool {
	t.Helper()
	err := exec.Command("docker", "exec", hostContainer(t, host), "test", "-d", dataRoot+"/"+id+"/home").Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false
	}
	t.Fatalf("check data dir of %s on %s: %v", id, host, err)
	return false
}

// removeDataDirs deletes test workspaces' data directories from both hosts,
// best effort: DELETE keeps them by contract, and test runs should not pile
// them up in the volumes.
func removeDataDirs(ids ...string) {
	if len(ids) == 0 {
		return
	}
	for _, h := range hosts {
		out, err := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.compose.project=berth",
			"--filter", "label=com.docker.compose.service="+h.id).Output()
		ctr := strings.TrimSpace(string(out))
		if err != nil || ctr == "" || strings.Contains(ctr, "\n") {
			continue
		}
		// A home with a disk quota is a loop mount: unmount it first, or
		// rm cannot remove it and the loop device stays taken.
		script := ""
		for _, id := range ids {
			if safeID.MatchString(id) {
				script += fmt.Sprintf("umount %[1]s/%[2]s/home 2>/dev/null; rm -rf -- %[1]s/%[2]s; ", dataRoot, id)
			}
		}
		_ = exec.Command("docker", "exec", ctr, "sh", "-c", script).Run()
	}
}

var safeID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ---------------------------------------------------------------------------
// Polling

// waitFor polls cond until it reports done or the deadline passes; then it
// fails with what cond last said. Polling with a deadline is how the suites
// wait for asynchronous work (cleanup loop, health probes): never a fixed
// sleep.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// A scheduler process of the test's own

// seed is the capacity and region a test gives one host.
type seed struct {
	CPU      float64
	MemoryMB int64
	DiskGB   int64
	Region   string
}

// scheduler is a scheduler process the test started, with its own registry,
// placing on the compose cluster's two hosts through their published agent
// ports. Gossip is off, so capacity is exactly the seeds.
type scheduler struct {
	url       string
	clusterID string
	api       *client
	logs      *lineLog
	exited    chan struct{} // of the running process
	exitErr   error
	cmd       *exec.Cmd // the running process
	bin       string
	env       []string // its settings, kept for restart
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// schedulerBinary builds berth/scheduler from the working tree once per
// run, or returns BERTH_E2E_SCHEDULER_BIN when that names a built one.
func schedulerBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("BERTH_E2E_SCHEDULER_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "berth-e2e-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "scheduler")
		cmd := exec.Command("go", "build", "-o", buildBin, "berth/scheduler")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build berth/scheduler: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// TestMain removes the scheduler binary built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

const testToken = "e2e-token"

// startScheduler starts `scheduler serve` with strategy and the seeds (by
// host id), waits until it serves and its health probes have found both
// hosts healthy, and stops it when the test ends. Containers it leaves on
// the hosts are an error and are removed. env adds settings (KEY=VALUE).
func startScheduler(t *testing.T, strategy string, seeds map[string]seed, env ...string) *scheduler {
	t.Helper()
	bin := schedulerBinary(t)
	root := repoRoot(t)
	pki := filepath.Join(root, ".dev", "pki")

	var servers []map[string]any
	for _, h := range hosts {
		s, ok := seeds[h.id]
		if !ok {
			t.Fatalf("no seed for %s", h.id)
		}
		_, port, err := net.SplitHostPort(h.addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		servers = append(servers, map[string]any{
			"id": h.id, "name": h.id, "hostname": h.id, "ip_address": "127.0.0.1", "agent_port": p,
			"architecture": "amd64", "region": s.Region,
			"total_cpu": s.CPU, "total_memory_mb": s.MemoryMB, "total_disk_gb": s.DiskGB,
		})
	}
	seedJSON, err := json.Marshal(servers)
	if err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	s := &scheduler{
		url:       "http://" + addr,
		clusterID: "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		logs:      &lineLog{},
		exited:    make(chan struct{}),
	}
	s.api = newClient(s.url, testToken)

	// Only what the test means: no gossip key, no BERTH_CONFIG, nothing
	// inherited from the caller's environment but PATH and HOME.
	s.bin = bin
	s.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_LISTEN=" + addr,
		"BERTH_DATA_DIR=" + t.TempDir(),
		"BERTH_TLS_CERT=" + filepath.Join(pki, "scheduler.crt"),
		"BERTH_TLS_KEY=" + filepath.Join(pki, "scheduler.key"),
		"BERTH_TLS_CA=" + filepath.Join(pki, "ca.crt"),
		"INTERNAL_SERVICE_TOKEN=" + testToken,
		"BERTH_PLACEMENT_STRATEGY=" + strategy,
		"BERTH_CLUSTER_ID=" + s.clusterID,
		"COMPUTE_WORKSPACE_SERVERS=" + string(seedJSON),
		"COMPUTE_SHUTDOWN_TIMEOUT=5",
		"BERTH_LOG_JSON=true",
	}
	s.env = append(s.env, env...)
	s.launch(t)

	// Cleanups run last-registered first: the tests' DELETEs, then the
	// stop, then the sweep of whatever the DELETEs left on the hosts.
	t.Cleanup(func() { s.sweep(t) })
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("scheduler %s log (last lines):\n%s", s.url, s.logs.tail(40))
		}
	})

	s.waitReady(t)
	return s
}

// launch starts the scheduler process with s's settings.
func (s *scheduler) launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scheduler: %v", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.exitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		s.exitErr = err
		close(exited)
	}()
}

// kill9 kills the scheduler process with SIGKILL, as a crash would, and
// waits until it is gone.
func (s *scheduler) kill9(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// restart starts the scheduler again after it ended: the same binary,
// settings, address and data directory (its registry), and waits until it
// is ready.
func (s *scheduler) restart(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
	default:
		t.Fatal("restart: the scheduler is still running")
	}
	s.launch(t)
	s.waitReady(t)
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
}

// readinessRegion is a region no host has: a create that asks for it is
// placed as far as the region filter and then refused, creating nothing.
const readinessRegion = "e2e-readiness-probe"

// waitReady waits until GET /health answers, until placement sees a healthy
// host that fits a starter (a create asking for readinessRegion is refused
// for its region, not for health), and until the health tracker has logged
// both hosts healthy (probes of all hosts run together every second).
func (s *scheduler) waitReady(t *testing.T) {
	t.Helper()
	alive := func() {
		select {
		case <-s.exited:
			t.Fatalf("scheduler exited (%v):\n%s", s.exitErr, s.logs.tail(40))
		default:
		}
	}
	waitFor(t, 30*time.Second, "scheduler GET /health", func() (bool, string) {
		alive()
		resp, err := http.Get(s.url + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	probe := s.api.as("e2e-readiness")
	id := uniqueID("e2e-ready")
	want := "No capacity available in " + readinessRegion + " region"
	probe.deleteOnCleanup(t, id) // in case the probe ever creates something
	body := createBody("e2e-readiness", id, map[string]any{"tier": "starter", "region_preference": readinessRegion})
	waitFor(t, 30*time.Second, "a healthy host as placement sees it", func() (bool, string) {
		alive()
		r := probe.do(t, http.MethodPost, "/workspaces", body)
		return r.status == http.StatusServiceUnavailable && r.detail() == want, r.String()
	})
	waitFor(t, 15*time.Second, "both hosts healthy in the scheduler's health log", func() (bool, string) {
		alive()
		h := s.logs.healthy()
		return h[hosts[0].id] && h[hosts[1].id], fmt.Sprintf("healthy: %v", h)
	})
}

// sweep fails the test if containers of this scheduler's cluster are left
// on a host, and removes them (and their data) so the next run starts clean.
func (s *scheduler) sweep(t *testing.T) {
	for _, h := range hosts {
		left := workspaceContainers(t, h.id, "label=berth.cluster="+s.clusterID)
		if len(left) == 0 {
			continue
		}
		ids := slices.Sorted(maps.Keys(left))
		t.Errorf("%s: containers of cluster %s left after the test: %v", h.id, s.clusterID, ids)
		for _, id := range ids {
			_ = exec.Command("docker", "exec", hostContainer(t, h.id), "docker", "rm", "-f", "workspace-"+id).Run()
		}
		removeDataDirs(ids...)
	}
}

// lineLog keeps a process's output, line by line.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[max(0, len(l.lines)-n):], "\n")
}

// healthy reads the health tracker's transitions from the JSON log: which
// servers are healthy now.
func (l *lineLog) healthy() map[string]bool {
	l.mu.Lock()
	lines := slices.Clone(l.lines)
	l.mu.Unlock()
	out := map[string]bool{}
	for _, line := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["@message"] != "server health changed" {
			continue
		}
		server, _ := m["server"].(string)
		out[server] = m["to"] == "healthy"
	}
	return out
}

// readLines reads r line by line, calling fn with each line (without its
// newline) and the time it was read.
func readLines(r io.Reader, fn func(line string, at time.Time)) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			fn(strings.TrimSuffix(line, "\n"), time.Now())
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
