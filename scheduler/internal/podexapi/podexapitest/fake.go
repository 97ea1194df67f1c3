// Package podexapitest is a fake podex API for tests: a real HTTP server
// that serves the routes the scheduler calls back (contract §7) and
// enforces their shapes and authentication as the podex API does — the
// service token on the server list, server heartbeats and status sync, a
// bearer token on hardware specs and usage records, heartbeat figures as
// query parameters and no body, usage events as UsageEventInput with ids
// matching ^[a-zA-Z0-9_-]+$ — and the API's de-duplication of usage events
// on user_id:id. Anything off is answered as the API would (401, 404, 422)
// and recorded as a violation, which tests check is empty. It can fail a
// share of calls, before doing anything or after doing it (the answer is
// lost), to test retries.
package podexapitest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fake is the fake podex API. Safe for concurrent use.
type Fake struct {
	URL   string
	token string
	srv   *httptest.Server

	mu         sync.Mutex
	servers    []map[string]any
	specs      []map[string]any
	failRate   float64
	rng        *rand.Rand
	usage      map[string]UsageEvent // "user_id:id" → the event as first accepted
	order      []string
	duplicates int
	heartbeats []Heartbeat
	statuses   []Status
	violations []string
	calls      map[string]int
	failed     map[string]int
	usageHook  func([]UsageEvent)
}

// UsageEvent is an accepted usage event as the API stored it.
type UsageEvent struct {
	ID              string         `json:"id"`
	UserID          string         `json:"user_id"`
	SessionID       string         `json:"session_id"`
	WorkspaceID     string         `json:"workspace_id"`
	UsageType       string         `json:"usage_type"`
	Quantity        float64        `json:"quantity"`
	Unit            string         `json:"unit"`
	Tier            string         `json:"tier"`
	DurationSeconds float64        `json:"duration_seconds"`
	Metadata        map[string]any `json:"metadata"`
	CreatedAt       string         `json:"created_at"`
	Received        time.Time      `json:"-"`
}

// Heartbeat is one server heartbeat the API took.
type Heartbeat struct {
	ServerID         string
	UsedCPU          float64
	UsedMemoryMB     int64
	UsedDiskGB       int64
	ActiveWorkspaces int
	At               time.Time
}

// Status is one status sync the API took.
type Status struct {
	WorkspaceID string
	Status      string
	At          time.Time
}

// New starts a fake API that wants token, on a loopback port.
func New(token string) *Fake {
	f := &Fake{token: token, usage: map[string]UsageEvent{}, calls: map[string]int{}, failed: map[string]int{},
		rng: rand.New(rand.NewPCG(1, 2))}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// SetServers sets what GET /api/servers/internal/list answers (each an
// object with the WorkspaceServer fields of §7); heartbeats of other ids
// are answered 404.
func (f *Fake) SetServers(servers ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = servers
}

// SetSpecs sets what GET /api/billing/hardware-specs answers.
func (f *Fake) SetSpecs(specs ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = specs
}

// SetFailRate makes a share p of the calls fail with a 5xx: half of them
// before anything is done (503), half after the call did its work (500:
// the answer is lost, the events are recorded). seed makes the draws
// repeatable.
func (f *Fake) SetFailRate(p float64, seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRate, f.rng = p, rand.New(rand.NewPCG(seed, seed+1))
}

// OnUsage sets a hook called with each usage batch after the API recorded
// it and before it answers (a test kills the caller there).
func (f *Fake) OnUsage(hook func([]UsageEvent)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usageHook = hook
}

// Usage returns the accepted usage events of a workspace ("" = all), in
// the order they were first accepted.
func (f *Fake) Usage(workspaceID string) []UsageEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []UsageEvent
	for _, k := range f.order {
		if e := f.usage[k]; workspaceID == "" || e.WorkspaceID == workspaceID {
			out = append(out, e)
		}
	}
	return out
}

// UsageSeconds is the compute seconds accepted for a workspace.
func (f *Fake) UsageSeconds(workspaceID string) int64 {
	var n int64
	for _, e := range f.Usage(workspaceID) {
		n += int64(e.Quantity)
	}
	return n
}

// Duplicates counts usage events sent again (same user_id:id, same event)
// and not counted twice.
func (f *Fake) Duplicates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.duplicates
}

// Heartbeats returns the server heartbeats taken, oldest first.
func (f *Fake) Heartbeats() []Heartbeat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.heartbeats)
}

// Statuses returns the status syncs taken, oldest first.
func (f *Fake) Statuses() []Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

// Violations lists every request that broke the podex API's rules.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// Calls counts the requests of a route ("servers.list", "servers.heartbeat",
// "workspaces.sync_status", "billing.hardware_specs",
// "billing.usage_record"), and Failed those the fake failed on purpose.
func (f *Fake) Calls(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[route]
}

// Failed counts the calls of a route the fake failed on purpose.
func (f *Fake) Failed(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed[route]
}

func (f *Fake) violate(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations = append(f.violations, fmt.Sprintf(format, a...))
}

// failure draws whether this call fails: 0 no, 1 before, 2 after.
func (f *Fake) failure(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[route]++
	if f.failRate <= 0 || f.rng.Float64() >= f.failRate {
		return 0
	}
	f.failed[route]++
	return 1 + f.rng.IntN(2)
}

var (
	serverPath = regexp.MustCompile(`^/api/servers/([^/]+)/heartbeat$`)
	statusPath = regexp.MustCompile(`^/api/workspaces/([^/]+)/internal/sync-status$`)
	safeID     = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

func detail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": msg})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/api/servers/internal/list" && r.Method == http.MethodGet:
		f.route(w, r, "servers.list", false, f.list)
	case p == "/api/billing/hardware-specs" && r.Method == http.MethodGet:
		f.route(w, r, "billing.hardware_specs", true, func(w http.ResponseWriter, _ *http.Request) bool {
			f.mu.Lock()
			specs := f.specs
			f.mu.Unlock()
			answer(w, specs)
			return true
		})
	case p == "/api/billing/usage/record" && r.Method == http.MethodPost:
		f.route(w, r, "billing.usage_record", true, f.record)
	case serverPath.MatchString(p) && r.Method == http.MethodPost:
		f.route(w, r, "servers.heartbeat", false, f.heartbeat)
	case statusPath.MatchString(p) && r.Method == http.MethodPost:
		f.route(w, r, "workspaces.sync_status", false, f.status)
	default:
		f.violate("unexpected request %s %s", r.Method, r.URL)
		detail(w, http.StatusNotFound, "Not Found")
	}
}

// route checks the authentication, draws a failure and runs h, which
// writes the answer and reports whether it did the call's work.
func (f *Fake) route(w http.ResponseWriter, r *http.Request, route string, bearer bool, h func(http.ResponseWriter, *http.Request) bool) {
	if bearer {
		if got := r.Header.Get("Authorization"); got != "Bearer "+f.token {
			f.violate("%s: Authorization %q, want the bearer token", route, got)
			detail(w, http.StatusUnauthorized, "Not authenticated")
			return
		}
	} else if got := r.Header.Get("X-Internal-Service-Token"); got != f.token {
		f.violate("%s: X-Internal-Service-Token %q, want the service token", route, got)
		detail(w, http.StatusUnauthorized, "Invalid service token")
		return
	}
	switch f.failure(route) {
	case 1:
		detail(w, http.StatusServiceUnavailable, "injected failure before the call")
		return
	case 2:
		h(httptest.NewRecorder(), r) // done, answer lost
		detail(w, http.StatusInternalServerError, "injected failure after the call")
		return
	}
	h(w, r)
}

func (f *Fake) list(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	servers := slices.Clone(f.servers)
	f.mu.Unlock()
	region := r.URL.Query().Get("region")
	out := []map[string]any{}
	for _, s := range servers {
		if region == "" || s["region"] == region {
			out = append(out, s)
		}
	}
	answer(w, out)
	return true
}

func (f *Fake) known(serverID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.servers {
		if s["id"] == serverID {
			return true
		}
	}
	return false
}

func (f *Fake) heartbeat(w http.ResponseWriter, r *http.Request) bool {
	id := serverPath.FindStringSubmatch(r.URL.Path)[1]
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		f.violate("heartbeat of %s: a body %q, want none (figures are query parameters)", id, b)
	}
	q := r.URL.Query()
	hb := Heartbeat{ServerID: id, At: time.Now()}
	var errs []string
	cpu, err := strconv.ParseFloat(q.Get("used_cpu"), 64)
	if err != nil || cpu < 0 {
		errs = append(errs, "used_cpu "+strconv.Quote(q.Get("used_cpu")))
	}
	hb.UsedCPU = cpu
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"used_memory_mb", &hb.UsedMemoryMB}, {"used_disk_gb", &hb.UsedDiskGB}} {
		n, err := strconv.ParseInt(q.Get(p.name), 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, p.name+" "+strconv.Quote(q.Get(p.name)))
		}
		*p.dst = n
	}
	n, err := strconv.Atoi(q.Get("active_workspaces"))
	if err != nil || n < 0 {
		errs = append(errs, "active_workspaces "+strconv.Quote(q.Get("active_workspaces")))
	}
	hb.ActiveWorkspaces = n
	if len(q) != 4 {
		errs = append(errs, fmt.Sprintf("%d query parameters, want 4", len(q)))
	}
	if len(errs) > 0 {
		f.violate("heartbeat of %s: %s", id, strings.Join(errs, "; "))
		detail(w, http.StatusUnprocessableEntity, strings.Join(errs, "; "))
		return false
	}
	if !f.known(id) {
		detail(w, http.StatusNotFound, "Server not found")
		return false
	}
	f.mu.Lock()
	f.heartbeats = append(f.heartbeats, hb)
	f.mu.Unlock()
	answer(w, map[string]any{"status": "ok"})
	return true
}

var apiStatuses = []string{"running", "stopped", "error", "starting"}

func (f *Fake) status(w http.ResponseWriter, r *http.Request) bool {
	id := statusPath.FindStringSubmatch(r.URL.Path)[1]
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.violate("sync-status of %s: body: %v", id, err)
		detail(w, http.StatusUnprocessableEntity, "body is not JSON")
		return false
	}
	s, _ := body["status"].(string)
	if !slices.Contains(apiStatuses, s) || len(body) > 2 {
		f.violate("sync-status of %s: body %v, want {\"status\": one of %v}", id, body, apiStatuses)
		detail(w, http.StatusUnprocessableEntity, "bad status")
		return false
	}
	f.mu.Lock()
	f.statuses = append(f.statuses, Status{WorkspaceID: id, Status: s, At: time.Now()})
	f.mu.Unlock()
	answer(w, map[string]any{"workspace_id": id, "status": s, "updated": true, "session_id": nil})
	return true
}

var isoUTC = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)$`)

// check validates one event as UsageEventInput; "" = fine.
func check(raw map[string]any) string {
	var problems []string
	str := func(k string) string { s, _ := raw[k].(string); return s }
	for _, k := range []string{"id", "user_id", "session_id", "workspace_id", "usage_type", "unit", "tier", "created_at"} {
		if str(k) == "" {
			problems = append(problems, k+" missing or not a non-empty string")
		}
	}
	if id := str("id"); id != "" && !safeID.MatchString(id) {
		problems = append(problems, "id "+strconv.Quote(id)+" does not match ^[a-zA-Z0-9_-]+$")
	}
	if str("usage_type") != "compute_seconds" || str("unit") != "seconds" {
		problems = append(problems, "usage_type/unit: want compute_seconds/seconds")
	}
	q, okQ := raw["quantity"].(float64)
	d, okD := raw["duration_seconds"].(float64)
	if !okQ || !okD || q != d || q <= 0 || q != float64(int64(q)) {
		problems = append(problems, fmt.Sprintf("quantity %v and duration_seconds %v: want the same whole seconds > 0", raw["quantity"], raw["duration_seconds"]))
	}
	md, _ := raw["metadata"].(map[string]any)
	if c, _ := md["container_id"].(string); c == "" {
		problems = append(problems, "metadata.container_id missing")
	}
	if s, _ := md["server_id"].(string); s == "" {
		problems = append(problems, "metadata.server_id missing")
	}
	if c := str("created_at"); c != "" && !isoUTC.MatchString(c) {
		problems = append(problems, "created_at "+strconv.Quote(c)+" is not ISO-8601 UTC")
	}
	return strings.Join(problems, "; ")
}

func (f *Fake) record(w http.ResponseWriter, r *http.Request) bool {
	var body struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Events == nil {
		f.violate("usage record: body is not {\"events\": [...]}: %v", err)
		detail(w, http.StatusUnprocessableEntity, "body is not {events: [...]}")
		return false
	}
	events := make([]UsageEvent, len(body.Events))
	for i, raw := range body.Events {
		if p := check(raw); p != "" {
			f.violate("usage record: event %d: %s", i, p)
			detail(w, http.StatusUnprocessableEntity, fmt.Sprintf("event %d: %s", i, p))
			return false
		}
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &events[i])
		events[i].Received = time.Now()
	}
	recorded, dups := 0, 0
	f.mu.Lock()
	for _, e := range events {
		key := e.UserID + ":" + e.ID
		if first, ok := f.usage[key]; ok {
			dups++
			f.duplicates++
			first.Received, e.Received = time.Time{}, time.Time{}
			if !reflect.DeepEqual(first, e) {
				f.violations = append(f.violations, fmt.Sprintf("usage record: id %s of user %s names two different events: %+v and %+v", e.ID, e.UserID, first, e))
			}
			continue
		}
		f.usage[key] = e
		f.order = append(f.order, key)
		recorded++
	}
	hook := f.usageHook
	f.mu.Unlock()
	if hook != nil {
		hook(events)
	}
	answer(w, map[string]any{"recorded": recorded, "duplicates": dups})
	return true
}
