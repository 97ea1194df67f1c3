package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"berth/scheduler/internal/podexapi/podexapitest"
)

// The podex API as a live peer (issue 11, parts 1 and 2): schedulers the
// tests start from the working tree, with COMPUTE_API_BASE_URL pointing at
// a fake podex API (podexapitest: a real HTTP server enforcing the podex
// request shapes and authentication and de-duplicating usage events on
// user_id:id), placing on the compose cluster's two hosts. The sub-tests
// run in parallel, each with its own scheduler and fake API.

// billedRun is how long the billing sub-tests keep a workspace running.
const billedRun = 125 * time.Second

func TestPodexPeer(t *testing.T) {
	needCluster(t)
	t.Run("servers heartbeats specs status", func(t *testing.T) {
		t.Parallel()
		testPeerServers(t)
	})
	t.Run("billing", func(t *testing.T) {
		t.Parallel()
		testBilling(t)
	})
}

// apiServer is a compose host as the podex API lists it: its agent port
// as docker_port.
func apiServer(t *testing.T, i int) map[string]any {
	t.Helper()
	_, port, err := net.SplitHostPort(hosts[i].addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return map[string]any{"id": hosts[i].id, "hostname": hosts[i].id, "ip_address": "127.0.0.1", "docker_port": p,
		"architecture": "amd64", "region": "local", "compute_service_url": "http://127.0.0.1:3003", "tls_enabled": true}
}

// podexSpecs is the seeded hardware-specs table of §9.1 (amd64 tiers), as
// the API serves it: hourly_rate in dollars.
func podexSpecs() []map[string]any {
	var out []map[string]any
	for i, s := range []struct {
		tier          string
		vcpu          int
		mem, disk, bw int
		rate          float64
	}{
		{"starter", 2, 4096, 20, 100, 0.03}, {"pro", 4, 8192, 50, 250, 0.06},
		{"power", 8, 16384, 100, 500, 0.10}, {"enterprise", 16, 32768, 200, 1000, 0.15},
	} {
		out = append(out, map[string]any{"id": strconv.Itoa(i + 1), "tier": s.tier, "display_name": strings.ToUpper(s.tier[:1]) + s.tier[1:],
			"description": "", "architecture": "x86_64", "vcpu": s.vcpu, "memory_mb": s.mem, "gpu_type": nil, "gpu_memory_gb": nil,
			"gpu_count": 0, "is_gpu": false, "requires_gke": false, "storage_gb": s.disk, "bandwidth_mbps": s.bw,
			"hourly_rate": s.rate, "is_available": true, "requires_subscription": nil, "region_availability": []string{}, "sort_order": i})
	}
	return out
}

// startPeer starts a scheduler of the test's own against api, with the
// compose hosts seeded roomy in region "local".
func startPeer(t *testing.T, api *podexapitest.Fake, env ...string) *scheduler {
	t.Helper()
	roomy := seed{CPU: 32, MemoryMB: 65536, DiskGB: 1000, Region: "local"}
	env = append([]string{"COMPUTE_API_BASE_URL=" + api.URL, "BERTH_ADMIN_TOKEN=" + testAdminToken}, env...)
	return startScheduler(t, "spread", map[string]seed{hosts[0].id: roomy, hosts[1].id: roomy}, env...)
}

// peerAdmin calls the admin API of s and decodes a 2xx answer into out.
func peerAdmin(t *testing.T, s *scheduler, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

type peerServer struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Health string `json:"health"`
}

// peerServers is GET /admin/servers by id.
func peerServers(t *testing.T, s *scheduler) map[string]peerServer {
	t.Helper()
	var list struct {
		Servers []peerServer `json:"servers"`
	}
	if code := peerAdmin(t, s, http.MethodGet, "/admin/servers", &list); code != http.StatusOK {
		t.Fatalf("GET /admin/servers: %d", code)
	}
	out := map[string]peerServer{}
	for _, srv := range list.Servers {
		out[srv.ID] = srv
	}
	return out
}

func noViolations(t *testing.T, api *podexapitest.Fake) {
	t.Helper()
	if v := api.Violations(); len(v) != 0 {
		t.Errorf("requests the podex API would refuse: %v", v)
	}
}

// A server the API lists appears within 35 s (the list is read every 30 s)
// and one it drops is cordoned, not deleted; heartbeats carry what the
// agent measures; a spec change on the API reaches scale-options; status
// changes reach the API.
func testPeerServers(t *testing.T) {
	api := podexapitest.New(testToken)
	t.Cleanup(api.Close)
	api.SetServers(apiServer(t, 0))
	api.SetSpecs(podexSpecs()...)
	// The server list and heartbeats at their 30 s defaults; short billing
	// intervals for the panel's outbox card.
	s := startPeer(t, api, "BERTH_HARDWARE_SPECS_TTL=2s", "BERTH_BILLING_INTERVAL=2s", "BERTH_BILLING_FLUSH_INTERVAL=1s")

	// ws-local-2 came from the seed, not from the API: remove it from the
	// registry, then have the API list it.
	if code := peerAdmin(t, s, http.MethodDelete, "/admin/servers/"+hosts[1].id, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /admin/servers/%s: %d", hosts[1].id, code)
	}
	api.SetServers(apiServer(t, 0), apiServer(t, 1))
	listed := time.Now()
	waitFor(t, 35*time.Second, "the server the API lists appears in berth", func() (bool, string) {
		_, ok := peerServers(t, s)[hosts[1].id]
		return ok, "not registered"
	})
	appeared := time.Since(listed)
	waitFor(t, 10*time.Second, "the listed server healthy", func() (bool, string) {
		srv := peerServers(t, s)[hosts[1].id]
		return srv.Health == "healthy" && srv.State == "active", srv.State + "/" + srv.Health
	})

	// Heartbeats: only after a successful probe, with the agent's figures.
	var hb podexapitest.Heartbeat
	waitFor(t, 35*time.Second, "a heartbeat of "+hosts[0].id, func() (bool, string) {
		for _, h := range api.Heartbeats() {
			if h.ServerID == hosts[0].id {
				hb = h
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d heartbeats", len(api.Heartbeats()))
	})
	// The figures are the host's, as its agent measures them (the admin
	// stats route asks it again now: memory moves with the other tests).
	var stats struct {
		Capacity struct {
			CPUCores      int     `json:"cpu_cores"`
			MemoryUsedMB  int64   `json:"memory_used_mb"`
			MemoryTotalMB int64   `json:"memory_total_mb"`
			DiskUsedGB    float64 `json:"disk_used_gb"`
		} `json:"capacity"`
	}
	if code := peerAdmin(t, s, http.MethodGet, "/admin/servers/"+hosts[0].id+"/stats", &stats); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	c := stats.Capacity
	if hb.UsedMemoryMB <= 0 || hb.UsedDiskGB <= 0 || hb.UsedCPU < 0 || hb.UsedCPU > float64(c.CPUCores) ||
		math.Abs(float64(hb.UsedMemoryMB-c.MemoryUsedMB)) > 0.1*float64(c.MemoryTotalMB) ||
		math.Abs(float64(hb.UsedDiskGB)-c.DiskUsedGB) > 2 {
		t.Errorf("heartbeat %+v; the agent measures %+v", hb, c)
	}

	// The API stops listing ws-local-2: cordoned within a sync, kept.
	api.SetServers(apiServer(t, 0))
	unlisted := time.Now()
	waitFor(t, 35*time.Second, "the server the API dropped cordoned", func() (bool, string) {
		srv, ok := peerServers(t, s)[hosts[1].id]
		return ok && srv.State == "cordoned", fmt.Sprintf("%+v (registered %v)", srv, ok)
	})
	cordoned := time.Since(unlisted)

	// A workspace: it lands on ws-local-1 (the other is cordoned), the
	// next heartbeat counts it, scale-options use the API's specs.
	k := s.api.as("peer-user")
	ws := k.mustCreate(t, "peer-session", uniqueID("peer"), nil)
	if ws.ServerID != hosts[0].id {
		t.Errorf("placed on %s, want %s (the other is cordoned)", ws.ServerID, hosts[0].id)
	}
	n := len(api.Heartbeats())
	waitFor(t, 40*time.Second, "a heartbeat counting the workspace", func() (bool, string) {
		for _, h := range api.Heartbeats()[n:] {
			if h.ServerID == hosts[0].id && h.ActiveWorkspaces == 1 {
				return true, ""
			}
		}
		return false, "not yet"
	})
	rateOf := func(tier string) (int, bool) {
		r := k.do(t, http.MethodGet, "/workspaces/"+ws.ID+"/scale-options", nil)
		var opts struct {
			AvailableTiers []struct {
				Tier            string `json:"tier"`
				HourlyRateCents int    `json:"hourly_rate_cents"`
			} `json:"available_tiers"`
		}
		r.into(t, &opts)
		for _, o := range opts.AvailableTiers {
			if o.Tier == tier {
				return o.HourlyRateCents, true
			}
		}
		return 0, false
	}
	if rate, ok := rateOf("pro"); !ok || rate != 6 {
		t.Errorf("pro in scale-options: %d¢ (%v), want 6¢", rate, ok)
	}
	specs := podexSpecs()
	specs[1]["hourly_rate"] = "0.29" // a Decimal, as a string: rounded to 29¢ (quirk 18)
	api.SetSpecs(specs...)
	changed := time.Now()
	waitFor(t, 10*time.Second, "the API's new pro rate in scale-options", func() (bool, string) {
		rate, _ := rateOf("pro")
		return rate == 29, fmt.Sprintf("%d¢", rate)
	})
	specsTook := time.Since(changed)

	// Status changes reach the API's sync-status, with the service token.
	if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/stop", nil); r.status != http.StatusNoContent {
		t.Fatalf("stop: %s", r)
	}
	if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil); r.status != http.StatusNoContent {
		t.Fatalf("restart: %s", r)
	}
	waitFor(t, 10*time.Second, "stopped then running synced to the API", func() (bool, string) {
		var got []string
		for _, st := range api.Statuses() {
			if st.WorkspaceID == ws.ID {
				got = append(got, st.Status)
			}
		}
		return strings.HasSuffix(strings.Join(got, ","), "stopped,running"), strings.Join(got, ",")
	})
	noViolations(t, api)

	// The panel shows the outbox depth: with the API refusing every call,
	// the running workspace's closed intervals wait in the outbox.
	api.SetFailRate(1, 1)
	waitFor(t, 20*time.Second, "usage events waiting in the outbox", func() (bool, string) {
		var view billingView
		peerAdmin(t, s, http.MethodGet, "/admin/billing", &view)
		return view.Summary.Pending > 0, fmt.Sprintf("%d pending", view.Summary.Pending)
	})
	card := panelBillingCard(t, s)
	if !strings.Contains(strings.ToLower(card), "billing outbox") || !strings.Contains(card, "1 workspace being billed") || !strings.Contains(card, "failing") {
		t.Errorf("the panel's billing card reads %q; want the outbox depth, the workspace billed and the failures", card)
	}
	api.SetFailRate(0, 1)
	t.Logf("PODEX_PEER listed_server_appeared_after=%s dropped_server_cordoned_after=%s spec_change_in_scale_options_after=%s heartbeat=%+v",
		appeared.Round(100*time.Millisecond), cordoned.Round(100*time.Millisecond), specsTook.Round(100*time.Millisecond), hb)
}

// billingView is GET /admin/billing?workspace_id=.
type billingView struct {
	Summary struct {
		Pending int `json:"outbox_pending"`
	} `json:"summary"`
	OpenIntervals []struct {
		WorkspaceID string `json:"workspace_id"`
	} `json:"open_intervals"`
	Events []struct {
		ID      string `json:"id"`
		Seconds int64  `json:"seconds"`
		SentAt  string `json:"sent_at"`
	} `json:"events"`
}

// billRun is one workspace billed for billedRun by a scheduler of its own,
// in one of the billing modes.
type billRun struct {
	mode     string
	api      *podexapitest.Fake
	s        *scheduler
	k        caller
	ws       info
	started  time.Time
	ran      time.Duration // from the create's answer to the stop's
	stopped  bool
	kills    int
	inFlight chan struct{} // a usage batch the API recorded and holds unanswered
	release  chan struct{}
}

const killedTwice = "scheduler killed twice"

// startBillRun starts the scheduler, the fake API and the workspace.
func startBillRun(t *testing.T, mode string) *billRun {
	t.Helper()
	r := &billRun{mode: mode, api: podexapitest.New(testToken), inFlight: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(r.api.Close)
	r.api.SetServers(apiServer(t, 0), apiServer(t, 1))
	r.api.SetSpecs(podexSpecs()...)
	if mode == "api fails half the calls" {
		r.api.SetFailRate(0.5, uint64(time.Now().UnixNano()))
	}
	r.s = startPeer(t, r.api, "BERTH_BILLING_INTERVAL=10s", "BERTH_BILLING_FLUSH_INTERVAL=1s")
	r.k = r.s.api.as("bill-user")
	r.ws = r.k.mustCreate(t, "bill-session", uniqueID("bill"), nil)
	r.started = time.Now()
	if mode == killedTwice {
		armed := r.started.Add(30 * time.Second)
		r.api.OnUsage(func([]podexapitest.UsageEvent) {
			if time.Now().Before(armed) {
				return
			}
			select {
			case r.inFlight <- struct{}{}:
				<-r.release // the answer goes to a dead scheduler
			default:
			}
		})
	}
	return r
}

// tick does what the run's schedule says now: in the kill mode, kill -9
// (and restart) the scheduler while the API holds a recorded batch
// unanswered, 30 s in or later, and again at an arbitrary moment 80 s in;
// stop the workspace billedRun after its create.
func (r *billRun) tick(t *testing.T) {
	t.Helper()
	since := time.Since(r.started)
	switch {
	case r.stopped:
	case r.mode == killedTwice && r.kills == 0 && since >= 30*time.Second:
		select {
		case <-r.inFlight:
			r.s.kill9(t)
			r.api.OnUsage(nil)
			close(r.release)
			r.s.restart(t)
			r.kills++
		default:
			if since > 90*time.Second {
				t.Fatal("no usage batch reached the API after 30 s")
			}
		}
	case r.mode == killedTwice && r.kills == 1 && since >= 80*time.Second:
		r.s.kill9(t)
		r.s.restart(t)
		r.kills++
	case since >= billedRun:
		if resp := r.k.do(t, http.MethodPost, "/workspaces/"+r.ws.ID+"/stop", nil); resp.status != http.StatusNoContent {
			t.Fatalf("stop: %s", resp)
		}
		r.ran, r.stopped = time.Since(r.started), true
	}
}

// verify: billed = the running time (±1 s), in the API and in the
// scheduler's outbox alike, in events whose ids never name two events and
// whose intervals never overlap.
func (r *billRun) verify(t *testing.T) {
	var view billingView
	waitFor(t, 90*time.Second, "the interval closed and the outbox drained", func() (bool, string) {
		view = billingView{}
		peerAdmin(t, r.s, http.MethodGet, "/admin/billing?workspace_id="+r.ws.ID, &view)
		return view.Summary.Pending == 0 && len(view.OpenIntervals) == 0,
			fmt.Sprintf("%d pending, %d open", view.Summary.Pending, len(view.OpenIntervals))
	})
	events := r.api.Usage(r.ws.ID)
	billed := r.api.UsageSeconds(r.ws.ID)
	var inOutbox int64
	for _, e := range view.Events {
		inOutbox += e.Seconds
	}
	if d := float64(billed) - r.ran.Seconds(); math.Abs(d) > 1 {
		t.Errorf("billed %d s for a run of %.3f s (%+.3f s)", billed, r.ran.Seconds(), d)
	}
	if billed != inOutbox {
		t.Errorf("the API counted %d s, the scheduler's outbox holds %d s", billed, inOutbox)
	}
	ids := map[string]bool{}
	type span struct{ from, to time.Time }
	var spans []span
	for _, e := range events {
		if ids[e.ID] {
			t.Errorf("event id %s twice", e.ID)
		}
		ids[e.ID] = true
		end, err := time.Parse(time.RFC3339Nano, e.CreatedAt)
		if err != nil {
			t.Fatalf("created_at %q: %v", e.CreatedAt, err)
		}
		spans = append(spans, span{end.Add(-time.Duration(e.DurationSeconds) * time.Second), end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("intervals overlap: %v and %v", spans[i-1], spans[i])
		}
	}
	if len(events) < int(billedRun/(10*time.Second)) {
		t.Errorf("%d events for %s with 10 s intervals", len(events), billedRun)
	}
	if r.mode == killedTwice && (r.kills != 2 || r.api.Duplicates() == 0) {
		t.Errorf("kills %d, batches sent again %d; want 2 kills and the batch the first cut off sent again", r.kills, r.api.Duplicates())
	}
	noViolations(t, r.api)
	t.Logf("BILLING mode=%q ran=%.3fs billed=%ds events=%d distinct_ids=%d resent_and_deduplicated=%d failed_on_purpose=%d",
		r.mode, r.ran.Seconds(), billed, len(events), len(ids), r.api.Duplicates(), r.api.Failed("billing.usage_record"))
}

// A workspace running billedRun is billed that long (±1 s) — with the API
// answering every call, with the API failing half of them (before or after
// doing them), and with the scheduler kill -9ed twice (once while the API
// holds a batch it has recorded but not answered). The three runs overlap
// in time, driven from this goroutine.
func testBilling(t *testing.T) {
	var runs []*billRun
	for _, mode := range []string{"plain", "api fails half the calls", killedTwice} {
		runs = append(runs, startBillRun(t, mode))
	}
	for {
		done := true
		for _, r := range runs {
			r.tick(t)
			done = done && r.stopped
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond) // the runs' schedule, not a synchronisation
	}
	for _, r := range runs {
		t.Run(r.mode, r.verify)
	}
}

// panelBillingCard signs in to s's admin panel in headless Chromium, waits
// for the billing card with failing events pending, saves a screenshot
// (.artifacts/screenshots/admin-panel-billing.png) and returns the card's
// text.
func panelBillingCard(t *testing.T, s *scheduler) string {
	t.Helper()
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1440, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	err := chromedp.Do(bctx, chromedp.Navigate(s.url+"/admin/ui"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testAdminToken), chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(`[data-card=billing]`)))
	if err != nil {
		t.Fatalf("open the panel: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const c = document.querySelector('[data-card=billing]');
			return Number(c.dataset.pending) > 0 && c.innerText.includes('failing'); })()`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the billing card shows no failing pending events: %v", err)
	}
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('[data-card=billing]').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
		dir := filepath.Join(repoRoot(t), ".artifacts", "screenshots")
		if os.MkdirAll(dir, 0o755) == nil && os.WriteFile(filepath.Join(dir, "admin-panel-billing.png"), png, 0o644) == nil {
			t.Logf("screenshot: %s", filepath.Join(dir, "admin-panel-billing.png"))
		}
	}
	return text
}
