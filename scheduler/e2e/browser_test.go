package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"berth/scheduler/internal/agentclient"
	"berth/shared/mtls"
	"berth/shared/testutil"
)

// This file drives the admin panel in a real headless Chromium against the
// compose cluster's scheduler (BERTH_URL overrides it): sign in, both hosts
// healthy with their capacity, a third host added through the form, its
// state changed with the buttons, then killed and seen to turn unreachable
// on the open page, and removed; then sign out, after which the browser's
// session cookie, replayed, opens nothing. The third host is an agent
// process of the test's own on this machine (the compose hosts are shared
// with other tests and stay untouched); it is added cordoned so that no
// other test's workspace can land on it. Screenshots go to
// .artifacts/screenshots/.

// panelAgentID is the third host's server id; scripts/pki.sh issues its
// certificate with the cluster's dev CA.
const panelAgentID = "ws-browser-test"

// panelURL is the scheduler whose panel is tested.
func panelURL() string {
	if u := os.Getenv("BERTH_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return schedulerURL
}

// chromiumPath is Debian's Chromium, or BERTH_CHROMIUM.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("BERTH_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium, or set BERTH_CHROMIUM): %v", p, err)
	}
	return p
}

// panelAPI calls the admin API with the admin token.
func panelAPI(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, panelURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// panelAgent is the third host: the agent binary, run as a process here,
// with the dev CA's certificate for panelAgentID, listening on every
// interface so the scheduler container reaches it through the compose
// network's gateway.
type panelAgent struct {
	addr string // gateway:port, as the scheduler container dials it
	cmd  *exec.Cmd

	mu     sync.Mutex
	logs   strings.Builder
	killed bool
}

func startPanelAgent(t *testing.T) *panelAgent {
	t.Helper()
	root := repoRoot(t)
	pkiDir := filepath.Join(root, ".dev", "pki")
	if out, err := exec.Command(filepath.Join(root, "scripts", "pki.sh"), "agent", pkiDir, panelAgentID, "localhost", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("issue the agent certificate: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "network", "inspect", "berth_berth", "--format", "{{(index .IPAM.Config 0).Gateway}}").Output()
	gateway := strings.TrimSpace(string(out))
	if err != nil || net.ParseIP(gateway) == nil {
		t.Fatalf("gateway of the compose network berth_berth: %v %q", err, out)
	}
	bin := filepath.Join(t.TempDir(), "agent")
	dataDir := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "berth/agent")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "0.0.0.0:0") // a port free on every interface
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	key := make([]byte, 32)
	rand.Read(key)

	a := &panelAgent{addr: net.JoinHostPort(gateway, strconv.Itoa(port))}
	a.cmd = exec.Command(bin)
	a.cmd.Env = append(os.Environ(),
		"BERTH_SERVER_ID="+panelAgentID,
		"BERTH_REGION=browser-test",
		"BERTH_LISTEN=0.0.0.0:"+strconv.Itoa(port),
		"BERTH_ADVERTISE_ADDR="+a.addr,
		"BERTH_TLS_CERT="+filepath.Join(pkiDir, panelAgentID+".crt"),
		"BERTH_TLS_KEY="+filepath.Join(pkiDir, panelAgentID+".key"),
		"BERTH_TLS_CA="+filepath.Join(pkiDir, "ca.crt"),
		// A gossip pool of its own: it must not join (and, killed, haunt)
		// the cluster's.
		"BERTH_GOSSIP_BIND=127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)),
		"BERTH_GOSSIP_KEY="+base64.StdEncoding.EncodeToString(key),
		"BERTH_JOIN=",
		"BERTH_DATA_DIR="+dataDir,
	)
	stderr, _ := a.cmd.StderrPipe()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.logs.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		a.kill()
		// The agent leaves its data directory bound nosuid,nodev: detach it
		// before the temp dir is removed.
		for i := 0; i < 4 && syscall.Unmount(dataDir, syscall.MNT_DETACH) == nil; i++ {
		}
		if t.Failed() {
			a.mu.Lock()
			t.Logf("agent %s log:\n%s", panelAgentID, a.logs.String())
			a.mu.Unlock()
		}
	})

	d, err := agentclient.NewDialer(mtls.Files{Cert: filepath.Join(pkiDir, "scheduler.crt"),
		Key: filepath.Join(pkiDir, "scheduler.key"), CA: filepath.Join(pkiDir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	client := d.Client(panelAgentID, a.addr)
	testutil.Eventually(t, 20*time.Second, "the third agent answers over mTLS at "+a.addr, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h, err := client.Health(ctx)
		return err == nil && h.DockerOK && h.ServerID == panelAgentID
	})
	return a
}

// kill ends the agent at once, as a crashed host would.
func (a *panelAgent) kill() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.killed {
		return
	}
	a.killed = true
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
}

// panelShots saves full-page PNG screenshots as test artifacts.
type panelShots struct {
	dir string
	n   int
}

func (s *panelShots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("admin-panel-%02d-%s.png", s.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowSel is the CSS selector of a server's row.
func rowSel(id string) string { return `#servers tr[data-server-id="` + id + `"]` }

func TestAdminPanelInBrowser(t *testing.T) {
	needCluster(t)
	chromium := chromiumPath(t)
	shots := &panelShots{dir: filepath.Join(repoRoot(t), ".artifacts", "screenshots")}
	if err := os.MkdirAll(shots.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A run that died half-way may have left the server behind.
	if code, body := panelAPI(t, "DELETE", "/admin/servers/"+panelAgentID+"?force=true", nil); code != 204 && code != 404 {
		t.Fatalf("clean up an old %s: %d %s", panelAgentID, code, body)
	}
	agent := startPanelAgent(t)
	t.Cleanup(func() { panelAPI(t, "DELETE", "/admin/servers/"+panelAgentID+"?force=true", nil) })

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1440, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			shots.take(t, bctx, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// until polls a JavaScript predicate in the page until it holds.
	until := func(what string, within time.Duration, predicate string) {
		t.Helper()
		_, err := chromedp.Run(bctx, chromedp.Poll[bool](predicate,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within)))
		if err != nil {
			shots.take(t, bctx, "failed")
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}

	// 1. Sign in with the token: the panel sends an unsigned browser to the form.
	do("open the panel", chromedp.Navigate(panelURL()+"/admin/ui"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc, _ := chromedp.Run(bctx, chromedp.Location()); !strings.HasSuffix(loc, "/admin/ui/signin") {
		t.Errorf("unsigned browser is at %s, want the sign-in page", loc)
	}
	shots.take(t, bctx, "sign-in")
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), adminToken()), chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ws-local-1"))))
	cookie := eval(`document.cookie`)
	if strings.Contains(cookie, "berth_admin") {
		t.Errorf("the session cookie is readable from script (%q): want HttpOnly", cookie)
	}

	// 2. Both hosts are healthy, with capacity, and the stream is live.
	hostOK := func(id string) string {
		return `(() => { const r = document.querySelector(` + js(rowSel(id)) + `);
			return !!r && r.dataset.health === 'healthy' && ['cpu', 'memory', 'disk'].every(k =>
				Number(r.querySelector('[data-resource=' + k + ']').dataset.effective) > 0); })()`
	}
	until("ws-local-1 and ws-local-2 healthy with capacity", 30*time.Second,
		hostOK("ws-local-1")+" && "+hostOK("ws-local-2")+` && document.querySelector('#live-status').dataset.live === 'live'`)
	for _, id := range []string{"ws-local-1", "ws-local-2"} {
		t.Logf("%s: %s", id, eval(`Array.from(document.querySelectorAll(`+js(rowSel(id)+" .meter")+`)).map(m => m.dataset.resource + ' ' + m.querySelector('.meter-text').textContent + ', ' + m.querySelector('.meter-sub').textContent).join('; ')`))
	}
	shots.take(t, bctx, "healthy-cluster")

	// 3. Add the third host with the form; it shows up and turns healthy.
	do("fill the add form",
		chromedp.SendKeys(chromedp.CSS(`#add-server input[name=id]`), panelAgentID),
		chromedp.SendKeys(chromedp.CSS(`#add-server input[name=ip_address]`), strings.Split(agent.addr, ":")[0]),
		chromedp.SetValue(chromedp.CSS(`#add-server input[name=agent_port]`), agent.addr[strings.LastIndex(agent.addr, ":")+1:]),
		chromedp.SendKeys(chromedp.CSS(`#add-server input[name=region]`), "browser-test"),
		chromedp.SendKeys(chromedp.CSS(`#add-server input[name=labels]`), "suite=e2e"),
		chromedp.SetValue(chromedp.CSS(`#add-server select[name=state]`), "cordoned"),
		chromedp.Click(chromedp.CSS("#add-submit")))
	until("the form reports the result", 20*time.Second,
		`(() => { const m = document.querySelector('#add-result'); return m.classList.contains('ok') || m.classList.contains('error'); })()`)
	if msg := eval(`document.querySelector('#add-result').textContent`); !strings.HasPrefix(msg, "Added "+panelAgentID) {
		shots.take(t, bctx, "failed")
		t.Fatalf("adding %s at %s: %q", panelAgentID, agent.addr, msg)
	}
	until("the new host's row, healthy and cordoned", 30*time.Second,
		`(() => { const r = document.querySelector(`+js(rowSel(panelAgentID))+`);
			return !!r && r.dataset.health === 'healthy' && r.dataset.state === 'cordoned'; })()`)
	shots.take(t, bctx, "host-added")

	// 4. The state buttons (never active: no other test's workspace may land here).
	do("drain", chromedp.Click(chromedp.CSS(rowSel(panelAgentID)+` button[data-action=drain]`)))
	until("draining", 10*time.Second, `document.querySelector(`+js(rowSel(panelAgentID))+`).dataset.state === 'draining'`)
	do("cordon", chromedp.Click(chromedp.CSS(rowSel(panelAgentID)+` button[data-action=cordon]`)))
	until("cordoned again", 10*time.Second, `document.querySelector(`+js(rowSel(panelAgentID))+`).dataset.state === 'cordoned'`)

	// 5. Kill the host: the open page shows it unreachable, without a reload.
	eval(`window.berthNoReload = 'still here'; 'ok'`)
	start := time.Now()
	agent.kill()
	until("the killed host unreachable on the open page", 30*time.Second,
		`['unreachable', 'unhealthy'].includes(document.querySelector(`+js(rowSel(panelAgentID))+`).dataset.health)`)
	t.Logf("%s turned %s on the page %s after the kill: %q", panelAgentID,
		eval(`document.querySelector(`+js(rowSel(panelAgentID))+`).dataset.health`), time.Since(start).Round(10*time.Millisecond),
		eval(`document.querySelector(`+js(rowSel(panelAgentID)+` [data-field=last-error]`)+`).textContent`))
	if got := eval(`String(window.berthNoReload)`); got != "still here" {
		t.Errorf("the page was reloaded (marker %q): want a live update", got)
	}
	shots.take(t, bctx, "host-unreachable")

	// 6. Remove it with the button (it asks for a second click).
	do("remove", chromedp.Click(chromedp.CSS(rowSel(panelAgentID)+` button[data-action=remove]`)))
	until("the remove button asks to confirm", 5*time.Second,
		`document.querySelector(`+js(rowSel(panelAgentID)+` button[data-action=remove]`)+`).dataset.confirm === '1'`)
	do("confirm remove", chromedp.Click(chromedp.CSS(rowSel(panelAgentID)+` button[data-action=remove]`)))
	until("the row gone", 10*time.Second, `document.querySelector(`+js(rowSel(panelAgentID))+`) === null`)
	shots.take(t, bctx, "host-removed")
	if code, body := panelAPI(t, "GET", "/admin/servers/"+panelAgentID, nil); code != 404 {
		t.Errorf("GET the removed server: %d %s, want 404", code, body)
	}

	// 7. Sign out: the session ends on the server, so the browser's cookie,
	// replayed from elsewhere, opens nothing.
	session, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (string, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{panelURL() + "/admin/ui"}})
		for _, c := range res.Cookies {
			if c.Name == "berth_admin" {
				return c.Value, err
			}
		}
		return "", err
	})
	if err != nil || session == "" {
		t.Fatalf("read the session cookie: %q, %v", session, err)
	}
	replay := func() int {
		req, _ := http.NewRequest("GET", panelURL()+"/admin/servers", nil)
		req.AddCookie(&http.Cookie{Name: "berth_admin", Value: session})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := replay(); code != 200 {
		t.Fatalf("the session cookie before sign-out: %d, want 200", code)
	}
	do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	if code := replay(); code != 401 {
		t.Errorf("the session cookie replayed after sign-out: %d, want 401", code)
	}
	shots.take(t, bctx, "signed-out")
}

// The preview in a real browser: Chromium opens the test app's page
// through the compose scheduler's preview proxy, as the podex web app's
// preview panel does through the podex API, which adds the service token
// and X-User-ID on the way (here a reverse proxy of the test's own stands in
// for it). The page renders and runs its script, the DevTools bridge is in
// it once, and inside an iframe the bridge forwards the page's console
// output to the parent window.
func TestPreviewInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	_, ws := startTestApp(t, "e2e-preview-browser")
	target, err := url.Parse(schedulerURL)
	if err != nil {
		t.Fatal(err)
	}
	podexAPI := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("X-Internal-Service-Token", serviceToken())
		pr.Out.Header.Set("X-User-ID", "e2e-preview-browser")
	}})
	defer podexAPI.Close()
	page := podexAPI.URL + "/preview/" + ws.ID + "/app/"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1024, 768))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}

	if err := chromedp.Do(bctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#greeting"))); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}
	if got := eval(`document.querySelector('#greeting').textContent`); got != "Hello from the berth test app" {
		t.Errorf("heading: got %q", got)
	}
	if got := eval(`document.querySelector('#script').textContent`); got != "script ran" {
		t.Errorf("the page's script: got %q, want it run", got)
	}
	if got := eval(`String(document.querySelectorAll('script[data-podex-devtools="true"]').length)`); got != "1" {
		t.Errorf("bridge scripts in the page: %s, want 1", got)
	}
	dir := filepath.Join(repoRoot(t), ".artifacts", "screenshots")
	if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil && os.MkdirAll(dir, 0o755) == nil {
		path := filepath.Join(dir, "preview-test-app.png")
		if os.WriteFile(path, png, 0o644) == nil {
			t.Logf("screenshot: %s", path)
		}
	}

	// The page in an iframe of itself: its bridge posts the console line
	// to the parent.
	eval(`window.bridged = [];
		window.addEventListener('message', e => { if (e.data && e.data.source === 'podex-devtools') window.bridged.push(e.data); });
		const f = document.createElement('iframe'); f.src = location.href; document.body.appendChild(f); 'ok'`)
	_, err = chromedp.Run(bctx, chromedp.Poll[bool](`window.bridged.some(m => m.type === 'devtools:console' &&
		m.payload.level === 'log' && m.payload.args.some(a => a.value === 'berth testapp ready'))`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("the bridge in the iframe forwarded no console line: %v; got %s", err, eval(`JSON.stringify(window.bridged)`))
	}
}
