// Command streambench is the client of the interactive-stream benchmarks
// (scheduler/e2e/bench_streams_test.go, run by `make bench`). It is built
// static and copied into a DinD workspace host, so that both sides of every
// comparison are measured from the same place, with the same client code:
//
//	streambench tty  -berth WSURL -token T -container CID -session NAME -n 200 -block 50 -gap 50ms
//	    keystroke -> echo round trips in one tmux session, gap apart, alternately
//	    through berth's terminal WebSocket (scheduler -> agent -> TTY exec)
//	    and through a TTY exec on the host's own Docker socket attached to
//	    the same session with the same command the agent runs (the
//	    baseline: what berth adds is the scheduler and agent hops). Without
//	    -berth, the baseline alone on an existing session.
//	streambench http -berth URL -direct URL -token T [-big /big?mb=100 -reps 5]
//	    [-small /json -n 1000 -c 16 -d 5s]
//	    the same requests through the preview proxy and straight to the
//	    app's bridge address: big-body throughput, sequential latency,
//	    requests/s with c connections.
//
// It prints a JSON array of series on stdout (the test turns it into benchmark
// lines) and its progress on stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: streambench tty|http [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "tty":
		err = runTTY(os.Args[2:])
	case "http":
		err = runHTTP(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want tty or http", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
}

// Stat is one measured series.
type Stat struct {
	Name   string  `json:"name"`
	N      int     `json:"n"`
	P50    int64   `json:"p50_ns"`
	P99    int64   `json:"p99_ns"`
	Mean   int64   `json:"mean_ns"`
	Max    int64   `json:"max_ns"`
	MBps   float64 `json:"mb_per_s,omitempty"`    // big bodies: median of the repetitions
	RPS    float64 `json:"req_per_s,omitempty"`   // concurrent small requests
	Bytes  int64   `json:"bytes,omitempty"`       // big bodies: bytes per response
	Errors int     `json:"errors,omitempty"`      // failed requests (rps run)
	Conc   int     `json:"concurrency,omitempty"` // rps run
}

func stat(name string, d []time.Duration) Stat {
	slices.Sort(d)
	s := Stat{Name: name, N: len(d)}
	if len(d) == 0 {
		return s
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	q := func(p float64) int64 { return int64(d[min(len(d)-1, int(p*float64(len(d))))]) }
	s.P50, s.P99, s.Mean, s.Max = q(0.50), q(0.99), int64(sum)/int64(len(d)), int64(d[len(d)-1])
	return s
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// ---------------------------------------------------------------------------
// Terminal echo

// term is an attached terminal: input in, output chunks out.
type term interface {
	Send(s string) error
	Output() <-chan []byte // closed when the stream ends
	Close()
}

func runTTY(args []string) error {
	fs := flag.NewFlagSet("tty", flag.ExitOnError)
	berthURL := fs.String("berth", "", "terminal WebSocket URL (ws://…/terminal/ID?session_id=S&shell=bash)")
	token := fs.String("token", "", "X-Internal-Service-Token")
	ctr := fs.String("container", "", "container id in this host's dockerd")
	session := fs.String("session", "", "tmux session name the terminal uses (podex-<session_id>)")
	sock := fs.String("docker", "/var/run/docker.sock", "this host's Docker socket")
	n := fs.Int("n", 200, "keystrokes per path")
	block := fs.Int("block", 50, "keystrokes per attach; the paths alternate by block")
	fs.BoolVar(&debug, "debug", false, "log every output chunk of the timed keystrokes")
	fs.DurationVar(&gap, "gap", 50*time.Millisecond, "pause between keystrokes (typing pace)")
	_ = fs.Parse(args)
	if *ctr == "" || *session == "" {
		return errors.New("tty: -container and -session are required")
	}
	openBerth := func() (term, error) { return dialBerth(*berthURL, *token) }
	openDocker := func() (term, error) {
		return dockerExecTTY(*sock, *ctr, []string{"tmux", "attach-session", "-t", "=" + *session})
	}
	type path struct {
		name string
		open func() (term, error)
		out  *[]time.Duration
	}
	var berth, direct []time.Duration
	paths := []path{{"berth", openBerth, &berth}, {"docker_exec", openDocker, &direct}}
	if *berthURL == "" { // the baseline alone, on an existing session
		paths = paths[1:]
	}

	// The first attach (berth's creates the session): turn tmux's status
	// line off, so that its clock never redraws letters into the output
	// being matched.
	t, err := paths[0].open()
	if err != nil {
		return fmt.Errorf("open %s terminal: %w", paths[0].name, err)
	}
	settle(t, 500*time.Millisecond)
	if err := t.Send("tmux set-option status off; clear\r"); err != nil {
		return err
	}
	settle(t, 300*time.Millisecond)
	t.Close()

	for done := 0; done < *n; done += *block {
		k := min(*block, *n-done)
		for _, p := range paths {
			t, err := p.open()
			if err != nil {
				return fmt.Errorf("open %s terminal: %w", p.name, err)
			}
			d, err := echoes(t, k)
			t.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			*p.out = append(*p.out, d...)
		}
		logf("tty: %d/%d keystrokes per path", done+k, *n)
	}
	var stats []Stat
	for _, p := range paths {
		stats = append(stats, stat(p.name, *p.out))
	}
	return json.NewEncoder(os.Stdout).Encode(stats)
}

var (
	debug bool
	// gap is the pause before each keystroke: a typist's pace. berth's
	// terminal batches output that follows a frame within 16 ms (contract
	// §3.21), so back-to-back keystrokes would measure the batching, not
	// the round trip.
	gap time.Duration
)

// echoes types k letters one at a time, gap apart, into the shell and times
// each until it shows in the output (escape sequences stripped). Every 30 letters the
// line is cleared (ctrl-U), untimed, so that it never wraps.
func echoes(t term, k int) ([]time.Duration, error) {
	settle(t, 300*time.Millisecond) // tmux redraws the window on attach
	if err := t.Send("\x15"); err != nil {
		return nil, err
	}
	settle(t, 100*time.Millisecond)
	var strip stripper
	out := make([]time.Duration, 0, k)
	for i := range k {
		if i > 0 && i%30 == 0 {
			if err := t.Send("\x15"); err != nil {
				return nil, err
			}
			settle(t, 100*time.Millisecond)
		}
		c := byte('a' + i%26)
		time.Sleep(gap)
		start := time.Now()
		if err := t.Send(string(c)); err != nil {
			return nil, err
		}
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case chunk, ok := <-t.Output():
				if !ok {
					return nil, errors.New("terminal ended while waiting for an echo")
				}
				txt := strip.text(chunk)
				if debug {
					logf("sent %q got %q (text %q)", c, chunk, txt)
				}
				if bytes.IndexByte(txt, c) >= 0 {
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("no echo of %q within 5s", c)
			}
		}
		out = append(out, time.Since(start))
	}
	_ = t.Send("\x15")
	settle(t, 100*time.Millisecond)
	return out, nil
}

// settle reads output until none came for quiet (at most 5 s in all).
func settle(t term, quiet time.Duration) {
	end := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-t.Output():
			if !ok {
				return
			}
		case <-time.After(quiet):
			return
		case <-end:
			return
		}
	}
}

// stripper keeps the printable text of terminal output, dropping escape
// sequences (CSI, OSC/DCS strings, two- and three-byte escapes) even when
// they are cut between chunks.
type stripper struct{ state int }

const (
	stNormal = iota
	stEsc
	stCSI
	stString
	stStringEsc
	stSkip1
)

func (s *stripper) text(b []byte) []byte {
	var out []byte
	for _, c := range b {
		switch s.state {
		case stNormal:
			if c == 0x1b {
				s.state = stEsc
			} else if c >= 0x20 && c < 0x7f {
				out = append(out, c)
			}
		case stEsc:
			switch {
			case c == '[':
				s.state = stCSI
			case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
				s.state = stString
			case c >= 0x20 && c <= 0x2f: // ESC ( B and the like
				s.state = stSkip1
			default:
				s.state = stNormal
			}
		case stCSI:
			if c >= 0x40 && c <= 0x7e {
				s.state = stNormal
			}
		case stString:
			switch c {
			case 0x07:
				s.state = stNormal
			case 0x1b:
				s.state = stStringEsc
			}
		case stStringEsc:
			if c == '\\' {
				s.state = stNormal
			} else {
				s.state = stString
			}
		case stSkip1:
			s.state = stNormal
		}
	}
	return out
}

// wsTerm is berth's terminal WebSocket: text frames in, binary frames out.
type wsTerm struct {
	conn    *websocket.Conn
	out     chan []byte
	cancel  context.CancelFunc
	closing atomic.Bool
}

func dialBerth(url, token string) (term, error) {
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Internal-Service-Token": {token}},
	})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	t := &wsTerm{conn: conn, out: make(chan []byte, 1024), cancel: cancel}
	go func() {
		defer close(t.out)
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				if !t.closing.Load() {
					logf("berth terminal ended: %v", err)
				}
				return
			}
			if typ == websocket.MessageBinary {
				t.out <- data
			}
		}
	}()
	return t, nil
}

func (t *wsTerm) Send(s string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return t.conn.Write(ctx, websocket.MessageText, []byte(s))
}
func (t *wsTerm) Output() <-chan []byte { return t.out }
func (t *wsTerm) Close() {
	t.closing.Store(true)
	_ = t.conn.Close(websocket.StatusNormalClosure, "")
	t.cancel()
	for range t.out { // let the reader end
	}
}

// dockerTerm is a TTY exec on the host's own dockerd, started the way the
// agent starts one (same user, directory, environment, detach keys; resized
// after the start, as the agent does on API 1.41), over the raw hijacked
// connection of POST /exec/{id}/start.
type dockerTerm struct {
	conn net.Conn
	out  chan []byte
}

func dockerExecTTY(sock, ctr string, cmd []string) (term, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	body, _ := json.Marshal(map[string]any{
		"User": "dev", "WorkingDir": "/home/dev", "Env": []string{"LANG=C.UTF-8", "TERM=xterm-256color"},
		"Cmd": cmd, "Tty": true, "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
		"DetachKeys": `ctrl-\,ctrl-\,ctrl-\,ctrl-\`,
	})
	resp, err := hc.Post("http://docker/containers/"+ctr+"/exec", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("exec create: %s: %s", resp.Status, raw)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(raw, &created); err != nil {
		return nil, err
	}

	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	start := `{"Detach":false,"Tty":true}`
	fmt.Fprintf(conn, "POST /exec/%s/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"+
		"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s", created.ID, len(start), start)
	br := bufio.NewReader(conn)
	sresp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("exec start: %w", err)
	}
	sresp.Body.Close() // a 101 has none: the stream follows in br
	if sresp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("exec start: %s, want 101", sresp.Status)
	}
	rresp, err := hc.Post("http://docker/exec/"+created.ID+"/resize?h=24&w=80", "", nil)
	if err == nil {
		rresp.Body.Close()
	}
	t := &dockerTerm{conn: conn, out: make(chan []byte, 1024)}
	go func() {
		defer close(t.out)
		for {
			buf := make([]byte, 32<<10)
			n, err := br.Read(buf)
			if n > 0 {
				t.out <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return t, nil
}

func (t *dockerTerm) Send(s string) error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(t.conn, s)
	return err
}
func (t *dockerTerm) Output() <-chan []byte { return t.out }

// Close detaches the tmux client (prefix ctrl-b, d), so that the exec ends
// (closing the connection would leave it running), then closes.
func (t *dockerTerm) Close() {
	_ = t.Send("\x02d")
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-t.out:
			if ok {
				continue
			}
		case <-timeout:
			logf("docker exec: tmux client did not detach within 5s")
		}
		break
	}
	t.conn.Close()
	for range t.out {
	}
}

// ---------------------------------------------------------------------------
// Preview proxy

func runHTTP(args []string) error {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	berthBase := fs.String("berth", "", "proxied base URL (http://…/preview/ID/proxy/PORT)")
	directBase := fs.String("direct", "", "the app's own base URL (http://BRIDGE-IP:PORT)")
	token := fs.String("token", "", "X-Internal-Service-Token (sent to the proxy only)")
	big := fs.String("big", "/big?mb=100", "path of the big body; empty skips")
	reps := fs.Int("reps", 5, "big-body requests per path (alternating)")
	small := fs.String("small", "/json", "path of the small page; empty skips")
	n := fs.Int("n", 1000, "sequential small requests per path")
	conc := fs.Int("c", 16, "connections of the requests/s run")
	dur := fs.Duration("d", 5*time.Second, "length of each requests/s run")
	_ = fs.Parse(args)
	if *berthBase == "" || *directBase == "" {
		return errors.New("http: -berth and -direct are required")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc + 4, DisableCompression: true, ReadBufferSize: 256 << 10}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	paths := []struct {
		name, base string
		hdr        http.Header
	}{
		{"berth", *berthBase, http.Header{"X-Internal-Service-Token": {*token}}},
		{"direct", *directBase, http.Header{}},
	}
	get := func(i int, path string) (int64, error) {
		req, err := http.NewRequest(http.MethodGet, paths[i].base+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header = paths[i].hdr.Clone()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		buf := make([]byte, 256<<10)
		got, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s %s: %s", paths[i].name, path, resp.Status)
		}
		return got, err
	}

	var stats []Stat
	if *big != "" {
		mbps := [2][]float64{}
		var size [2]int64
		for r := range *reps {
			for i := range paths {
				start := time.Now()
				got, err := get(i, *big)
				if err != nil {
					return err
				}
				d := time.Since(start)
				if size[i] != 0 && size[i] != got {
					return fmt.Errorf("%s %s: %d bytes, earlier %d", paths[i].name, *big, got, size[i])
				}
				size[i] = got
				mbps[i] = append(mbps[i], float64(got)/1e6/d.Seconds())
				logf("big %d/%d %s: %d bytes in %s (%.0f MB/s)", r+1, *reps, paths[i].name, got, d.Round(time.Millisecond), mbps[i][len(mbps[i])-1])
			}
		}
		if size[0] != size[1] {
			return fmt.Errorf("big body: berth %d bytes, direct %d", size[0], size[1])
		}
		for i, p := range paths {
			slices.Sort(mbps[i])
			stats = append(stats, Stat{Name: "big/" + p.name, N: *reps, MBps: mbps[i][len(mbps[i])/2], Bytes: size[i]})
		}
	}
	if *small != "" {
		// Sequential latency, the paths alternating by blocks of 100.
		lat := [2][]time.Duration{}
		for i := range paths { // warm the connections
			if _, err := get(i, *small); err != nil {
				return err
			}
		}
		for done := 0; done < *n; done += 100 {
			for i := range paths {
				for range min(100, *n-done) {
					start := time.Now()
					if _, err := get(i, *small); err != nil {
						return err
					}
					lat[i] = append(lat[i], time.Since(start))
				}
			}
		}
		for i, p := range paths {
			stats = append(stats, stat("small_seq/"+p.name, lat[i]))
		}
		// Requests/s with conc connections, each path for dur.
		for i, p := range paths {
			var mu sync.Mutex
			var all []time.Duration
			var errs atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), *dur)
			var wg sync.WaitGroup
			start := time.Now()
			for range *conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for ctx.Err() == nil {
						t0 := time.Now()
						if _, err := get(i, *small); err != nil {
							errs.Add(1)
							continue
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			cancel()
			el := time.Since(start)
			s := stat("small_rps/"+p.name, all)
			s.RPS, s.Errors, s.Conc = float64(len(all))/el.Seconds(), int(errs.Load()), *conc
			stats = append(stats, s)
			logf("rps %s: %.0f req/s, p99 %s, %d errors", p.name, s.RPS, time.Duration(s.P99), s.Errors)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(stats)
}
