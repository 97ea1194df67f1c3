// Command cloudflared is berth's stand-in for Cloudflare's cloudflared in the
// workspace image (deploy/workspace.Dockerfile installs it as
// /usr/local/bin/cloudflared). The real connector cannot be built here (the
// Go module proxy refuses github.com/cloudflare/cloudflared), and the
// compute API's tunnel routes (contract §3.19) only need its process shape:
//
//	cloudflared tunnel run --token <token> [--url <origin>]
//
// It checks its arguments about as the real one does (a tunnel token is
// base64 JSON with an account tag, a tunnel id and a secret; --url must be an
// origin URL) and fails with a usage error otherwise; it serves the metrics
// endpoint the real connector serves (127.0.0.1, first free port of
// 20241–20245, else a random one; or --metrics); it logs in cloudflared's
// console format on stderr, saying that it is a stand-in and which origin it
// would serve, never the token; it stays up until SIGTERM or SIGINT and then
// exits 0. It connects to nothing: no traffic ever reaches such a tunnel.
//
// No dependencies beyond the standard library; built static by `make build`.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// version is what --version reports: no real release number, so nobody
// mistakes the stand-in for a connector.
const version = "0.0.0-berth-standin"

// defaultMetricsPorts are the ports the real connector tries, in order,
// before a random one (its docs: "first available port in the range 20241
// to 20245").
var defaultMetricsPorts = []int{20241, 20242, 20243, 20244, 20245}

// command is what the arguments ask for.
type command int

const (
	cmdRun command = iota
	cmdVersion
	cmdHelp
)

// options are the flags of `tunnel run` the stand-in understands.
type options struct {
	token        string
	url          string // the origin, normalised; "" when the tunnel's remote configuration has the ingress
	metrics      string // listen address; "" = the default ports
	noAutoupdate bool
	loglevel     string
	tunnelID     string // from the token
}

// usageError is a command line the real cloudflared would refuse too.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

const usage = `NAME:
   cloudflared - berth's stand-in for Cloudflare's tunnel connector

USAGE:
   cloudflared tunnel run --token <TOKEN> [--url <ORIGIN>] [--metrics <ADDR>] [--no-autoupdate]
   cloudflared --version

The stand-in keeps the process shape of the real connector but connects to
no Cloudflare edge: no traffic reaches its tunnels.
`

// parseArgs reads the command line (without the program name). The token
// may also come from TUNNEL_TOKEN, as with the real connector.
func parseArgs(args []string, getenv func(string) string) (command, options, error) {
	var o options
	if len(args) == 0 {
		return cmdHelp, o, nil
	}
	switch args[0] {
	case "--version", "-version", "-v", "version":
		return cmdVersion, o, nil
	case "--help", "-help", "-h", "help":
		return cmdHelp, o, nil
	case "tunnel":
	default:
		return 0, o, usagef("the stand-in implements only `cloudflared tunnel run`, not %q", args[0])
	}
	fs := flag.NewFlagSet("cloudflared tunnel", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.token, "token", "", "")
	fs.StringVar(&o.url, "url", "", "")
	fs.StringVar(&o.metrics, "metrics", "", "")
	fs.BoolVar(&o.noAutoupdate, "no-autoupdate", false, "")
	fs.StringVar(&o.loglevel, "loglevel", "info", "")
	// Like urfave/cli, flags go before `run` (tunnel flags) or after it.
	if err := fs.Parse(args[1:]); err != nil {
		return 0, o, usagef("Incorrect Usage: %v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "run" {
		return 0, o, usagef("the stand-in implements only `cloudflared tunnel run`; quick tunnels and other subcommands are not available")
	}
	if err := fs.Parse(rest[1:]); err != nil {
		return 0, o, usagef("Incorrect Usage: %v", err)
	}
	names := fs.Args()
	if o.token == "" {
		o.token = getenv("TUNNEL_TOKEN")
	}
	switch {
	case o.token == "" && len(names) == 0:
		return 0, o, usagef(`"cloudflared tunnel run" requires the ID or name of the tunnel to run as the last command line argument or in the configuration file.`)
	case o.token == "":
		return 0, o, usagef("the stand-in runs only remotely-managed tunnels: pass --token (locally-managed tunnel %q needs credentials it cannot use)", names[0])
	case len(names) > 1:
		return 0, o, usagef("Incorrect Usage: \"cloudflared tunnel run\" accepts only one argument, got %d", len(names))
	}
	id, err := parseToken(o.token)
	if err != nil {
		return 0, o, err
	}
	o.tunnelID = id
	if o.url != "" {
		if o.url, err = originURL(o.url); err != nil {
			return 0, o, err
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error", "fatal"}, o.loglevel) {
		return 0, o, usagef("Incorrect Usage: unknown log level %q (debug, info, warn, error, fatal)", o.loglevel)
	}
	return cmdRun, o, nil
}

// errBadToken is the real connector's answer to a token it cannot decode.
var errBadToken = errors.New("Provided Tunnel token is not valid.") // the real connector's words

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseToken checks a tunnel token: standard base64 of the JSON object
// {"a": account tag, "t": tunnel UUID, "s": base64 secret}, as the
// dashboard issues them. It returns the tunnel id (not a secret).
func parseToken(token string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return "", errBadToken
	}
	var t struct {
		AccountTag string `json:"a"`
		Secret     []byte `json:"s"` // base64 in the JSON
		TunnelID   string `json:"t"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.AccountTag == "" || len(t.Secret) == 0 || !uuidRE.MatchString(t.TunnelID) {
		return "", errBadToken
	}
	return strings.ToLower(t.TunnelID), nil
}

// originSchemes are the origin kinds the real connector's --url accepts.
var originSchemes = []string{"http", "https", "tcp", "ssh", "rdp", "smb", "unix", "unix+tls"}

// originURL validates --url as the real connector roughly does: a missing
// scheme means http; the scheme must be an origin kind; network origins
// need a host.
func originURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("Error validating origin URL: %w", err)
	}
	if !slices.Contains(originSchemes, u.Scheme) {
		return "", fmt.Errorf("Error validating origin URL: unsupported scheme %q in %s", u.Scheme, s)
	}
	if u.Host == "" && !strings.HasPrefix(u.Scheme, "unix") {
		return "", fmt.Errorf("Error validating origin URL: %s has no host", s)
	}
	return u.String(), nil
}

// logger writes cloudflared's console format: time, level, message, fields.
type logger struct {
	w   io.Writer
	now func() time.Time
}

func (l logger) log(level, msg string, kv ...string) {
	var b strings.Builder
	b.WriteString(l.now().UTC().Format(time.RFC3339))
	b.WriteString(" " + level + " " + msg)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(" " + kv[i] + "=" + kv[i+1])
	}
	b.WriteByte('\n')
	_, _ = io.WriteString(l.w, b.String())
}

// listenMetrics opens the metrics listener: addr, or the default ports on
// 127.0.0.1 and then a random one.
func listenMetrics(addr string) (net.Listener, error) {
	if addr != "" {
		return net.Listen("tcp", addr)
	}
	for _, p := range defaultMetricsPorts {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// metricsHandler serves what the real metrics server serves, truthfully:
// no edge connections, so /ready answers 503.
func metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# HELP build_info Build and version information\n# TYPE build_info gauge\n"+
			"build_info{goversion=%q,revision=\"standin\",type=\"standin\",version=%q} 1\n"+
			"# HELP cloudflared_tunnel_ha_connections Number of active ha connections\n"+
			"# TYPE cloudflared_tunnel_ha_connections gauge\ncloudflared_tunnel_ha_connections 0\n",
			runtime.Version(), version)
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":503,"readyConnections":0}`+"\n")
	})
	mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK\n")
	})
	return mux
}

// run serves the stand-in tunnel until ctx ends (the signal), then stops
// the metrics server and returns nil.
func run(ctx context.Context, o options, log logger) error {
	log.log("INF", "Starting tunnel", "tunnelID", o.tunnelID)
	log.log("INF", "Version "+version+" (berth stand-in for cloudflared)")
	log.log("WRN", "This cloudflared is berth's stand-in: it connects to no Cloudflare edge and no traffic reaches this tunnel")
	if o.url != "" {
		log.log("INF", "Settings: map[url:"+o.url+"]")
	}
	ln, err := listenMetrics(o.metrics)
	if err != nil {
		return fmt.Errorf("failed to start the metrics server: %w", err)
	}
	srv := &http.Server{Handler: metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.log("INF", "Starting metrics server on "+ln.Addr().String()+"/metrics")
	if o.url != "" {
		log.log("INF", "Stand-in connector up; the origin would be "+o.url, "connections", "0")
	} else {
		log.log("INF", "Stand-in connector up; the origin would come from the tunnel's remote configuration", "connections", "0")
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("metrics server: %w", err)
	}
	log.log("INF", "Initiating graceful shutdown due to signal "+signalName(ctx)+" ...")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.log("WRN", "Metrics server: "+err.Error())
	}
	log.log("INF", "Metrics server stopped")
	log.log("INF", "Tunnel server stopped")
	return nil
}

// signalName names the signal that ended ctx, as the real log line does.
func signalName(ctx context.Context) string {
	var s *signalCause
	if errors.As(context.Cause(ctx), &s) {
		return s.sig.String()
	}
	return "interrupt"
}

// signalCause is the cancel cause of the run context.
type signalCause struct{ sig os.Signal }

func (s *signalCause) Error() string { return "signal " + s.sig.String() }

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

// mainExit runs the command line and returns the exit code: 0 after a
// clean stop (SIGTERM or SIGINT), 1 for a usage error or a failure.
func mainExit(args []string, stdout, stderr io.Writer) int {
	cmd, o, err := parseArgs(args, os.Getenv)
	log := logger{w: stderr, now: time.Now}
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		log.log("ERR", ue.msg)
		fmt.Fprint(stderr, "\n"+usage)
		return 1
	case err != nil:
		log.log("ERR", err.Error())
		return 1
	case cmd == cmdVersion:
		fmt.Fprintf(stdout, "cloudflared version %s (berth stand-in, %s)\n", version, runtime.Version())
		return 0
	case cmd == cmdHelp:
		fmt.Fprint(stdout, usage)
		return 0
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer func() {
		signal.Stop(sigs) // nothing is sent after this: closing ends the goroutine below
		close(sigs)
	}()
	go func() {
		if s, ok := <-sigs; ok {
			cancel(&signalCause{sig: s})
		}
	}()
	if err := run(ctx, o, log); err != nil {
		log.log("ERR", err.Error())
		return 1
	}
	return 0
}
