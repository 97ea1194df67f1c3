package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/config"
	"berth/shared/testutil"
)

// servedApp is the real scheduler (benchApp) served by App.Serve, as Run
// serves it, on loopback listeners: the main one and, with
// BERTH_ADMIN_LISTEN set, the admin one.
type servedApp struct {
	app           *App
	url, adminURL string // adminURL = url without an admin listener
	client        *http.Client
	pki           *testutil.PKI
	certDir       string // the configured certificate files: tls.crt, tls.key
	certA, certB  *x509.Certificate
	pairA, pairB  [2]string // cert and key files of two certificates for 127.0.0.1
}

// serveApp starts the scheduler with TLS (certificate A, from files in a
// temp dir) when withTLS, and a separate admin listener when adminOwn.
func serveApp(t *testing.T, withTLS, adminOwn bool, opts ...func(*config.Config)) *servedApp {
	t.Helper()
	s := &servedApp{pki: testutil.NewPKI(t), certDir: t.TempDir()}
	s.pairA[0], s.pairA[1] = s.pki.Issue("https-a", "scheduler", true, "127.0.0.1", "localhost")
	s.pairB[0], s.pairB[1] = s.pki.Issue("https-b", "scheduler", true, "127.0.0.1", "localhost")
	s.certA, s.certB = readCert(t, s.pairA[0]), readCert(t, s.pairB[0])
	if withTLS {
		s.install(t, s.pairA)
	}
	opts = append(opts, func(c *config.Config) {
		c.AdminToken = "admin-token-for-tests"
		if withTLS {
			c.HTTPTLSCert, c.HTTPTLSKey = filepath.Join(s.certDir, "tls.crt"), filepath.Join(s.certDir, "tls.key")
		}
		if adminOwn {
			c.AdminListen = "127.0.0.1:0"
		}
	})
	_, a := benchApp(t, 0, opts...)
	s.app = a
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := listen()
	var adminL net.Listener
	if adminOwn {
		adminL = listen()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l, adminL) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	scheme := "http"
	pool := x509.NewCertPool()
	if withTLS {
		scheme = "https"
		ca, err := os.ReadFile(s.pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(ca)
	}
	s.url = scheme + "://" + l.Addr().String()
	s.adminURL = s.url
	if adminOwn {
		s.adminURL = scheme + "://" + adminL.Addr().String()
	}
	// A new connection (and handshake) per request, so each request sees
	// the certificate served at that moment.
	s.client = &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// install copies the pair into the configured files, each replaced by
// rename as a certificate tool (certbot, cert-manager) does.
func (s *servedApp) install(t *testing.T, pair [2]string) {
	t.Helper()
	for i, name := range []string{"tls.crt", "tls.key"} {
		b, err := os.ReadFile(pair[i])
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(s.certDir, "."+name+".new")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(s.certDir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// answer is what do keeps of a response, whose body it has read and closed.
type answer struct {
	StatusCode int
	cookies    []*http.Cookie
}

func (a answer) Cookies() []*http.Cookie { return a.cookies }

// do sends a request and returns the answer, read whole, and the serial
// of the certificate the server presented (nil over plain HTTP).
func (s *servedApp) do(t *testing.T, method, u string, body io.Reader, hdr map[string]string) (answer, string, *big.Int) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var serial *big.Int
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		serial = resp.TLS.PeerCertificates[0].SerialNumber
	}
	return answer{StatusCode: resp.StatusCode, cookies: resp.Cookies()}, string(b), serial
}

// The listener speaks TLS with the configured files, and a certificate
// replaced on disk is served on a later handshake without a restart.
func TestHTTPSCertificateReload(t *testing.T) {
	s := serveApp(t, true, false)
	resp, _, serial := s.do(t, "GET", s.url+"/health", nil, nil)
	if resp.StatusCode != 200 || serial == nil || serial.Cmp(s.certA.SerialNumber) != 0 {
		t.Fatalf("GET /health over TLS = %d, certificate serial %v: want 200 and certificate A (%v)", resp.StatusCode, serial, s.certA.SerialNumber)
	}
	// Plain HTTP on the TLS port is refused.
	plain, err := http.Get("http://" + strings.TrimPrefix(s.url, "https://") + "/health")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener = %d, want 400", plain.StatusCode)
		}
	}

	start := time.Now()
	s.install(t, s.pairB)
	testutil.Eventually(t, 5*time.Second, "certificate B served after the files were replaced", func() bool {
		_, _, serial := s.do(t, "GET", s.url+"/health", nil, nil)
		return serial != nil && serial.Cmp(s.certB.SerialNumber) == 0
	})
	t.Logf("certificate B served %s after the files were replaced (check interval 1 s)", time.Since(start).Round(time.Millisecond))

	// A broken replacement (a key that does not match) keeps B: with the
	// files read on every handshake, the next one reads the broken pair.
	s.app.SetTLSCheckInterval(0)
	s.install(t, [2]string{s.pairA[0], s.pairB[1]})
	resp, _, serial = s.do(t, "GET", s.url+"/health", nil, nil)
	if resp.StatusCode != 200 || serial.Cmp(s.certB.SerialNumber) != 0 {
		t.Errorf("after a mismatched pair: %d, serial %v, want 200 with certificate B still", resp.StatusCode, serial)
	}
}

// With BERTH_ADMIN_LISTEN, /admin (API and panel) is served on the admin
// listener only, and the compute routes on the main one only; over TLS the
// panel's cookie is Secure.
func TestAdminListener(t *testing.T) {
	s := serveApp(t, true, true, func(c *config.Config) { c.MetricsToken = "metrics-token" })
	bearer := map[string]string{"Authorization": "Bearer admin-token-for-tests"}
	service := map[string]string{"X-Internal-Service-Token": "bench-token", "X-User-ID": "u"}
	tests := []struct {
		name, base, method, path string
		hdr                      map[string]string
		want                     int
	}{
		{"admin API on the admin listener", s.adminURL, "GET", "/admin/servers", bearer, 200},
		{"panel on the admin listener", s.adminURL, "GET", "/admin/ui/signin", nil, 200},
		{"admin API not on the main listener", s.url, "GET", "/admin/servers", bearer, 404},
		{"panel not on the main listener", s.url, "GET", "/admin/ui/signin", nil, 404},
		{"sign-in not on the main listener", s.url, "POST", "/admin/ui/signin", nil, 404},
		{"compute API on the main listener", s.url, "GET", "/workspaces?user_id=u", service, 200},
		{"compute API not on the admin listener", s.adminURL, "GET", "/workspaces?user_id=u", service, 404},
		{"podex server routes on the main listener", s.url, "GET", "/servers/none/images", service, 200},
		{"health on the main listener", s.url, "GET", "/health", nil, 200},
		{"metrics without its token", s.url, "GET", "/metrics", nil, 401},
		{"metrics with the admin token", s.url, "GET", "/metrics", bearer, 401},
		{"metrics with its token", s.url, "GET", "/metrics", map[string]string{"Authorization": "Bearer metrics-token"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _ := s.do(t, tt.method, tt.base+tt.path, nil, tt.hdr)
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d (%.200s)", tt.method, tt.path, resp.StatusCode, tt.want, body)
			}
		})
	}

	form := url.Values{"token": {"admin-token-for-tests"}}.Encode()
	resp, body, _ := s.do(t, "POST", s.adminURL+"/admin/ui/signin", strings.NewReader(form),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == admin.CookieName {
			ck = c
		}
	}
	if resp.StatusCode != 303 || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in over TLS = %d, cookie %+v (%s): want 303 with a Secure, HttpOnly, SameSite=Strict cookie", resp.StatusCode, ck, body)
	}
	// The session works on the admin listener.
	resp, _, _ = s.do(t, "GET", s.adminURL+"/admin/servers", nil, map[string]string{"Cookie": admin.CookieName + "=" + ck.Value})
	if resp.StatusCode != 200 {
		t.Errorf("admin API with the session cookie = %d, want 200", resp.StatusCode)
	}
}

// BERTH_ADMIN_SECURE_COOKIE marks the cookie Secure on plain HTTP (TLS
// ends in a front proxy); without it plain HTTP gets a plain cookie.
func TestSecureCookieBehindFront(t *testing.T) {
	for _, force := range []bool{false, true} {
		s := serveApp(t, false, false, func(c *config.Config) { c.SecureCookie = force })
		form := url.Values{"token": {"admin-token-for-tests"}}.Encode()
		resp, _, _ := s.do(t, "POST", s.url+"/admin/ui/signin", strings.NewReader(form),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == admin.CookieName {
				ck = c
			}
		}
		if ck == nil || ck.Secure != force {
			t.Errorf("BERTH_ADMIN_SECURE_COOKIE=%v over plain HTTP: cookie %+v, want Secure=%v", force, ck, force)
		}
	}
}

// The panel's event stream lives as long as the page is open: it is taken
// off the server's whole-request write timeout (BERTH_HTTP_WRITE_TIMEOUT,
// here 1 s), and keeps sending its 2 s heartbeat snapshots past it.
func TestPanelStreamOutlivesWriteTimeout(t *testing.T) {
	s := serveApp(t, true, false, func(c *config.Config) { c.HTTP.Write = time.Second })
	req, _ := http.NewRequest("GET", s.url+"/admin/ui/events", nil)
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream = %d", resp.StatusCode)
	}
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	snapshots := 0
	for sc.Scan() && time.Since(start) < 3*time.Second {
		if strings.HasPrefix(sc.Text(), "event: snapshot") {
			snapshots++
		}
	}
	if time.Since(start) < 3*time.Second || snapshots < 2 {
		t.Errorf("the stream ended after %s with %d snapshots (%v): want it open past the 1 s write timeout",
			time.Since(start).Round(time.Millisecond), snapshots, sc.Err())
	}
}
