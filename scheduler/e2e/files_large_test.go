package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 10 part 3, "no silent cuts, one size budget": files up to the
// limit (BERTH_FILE_LIMIT, 100 MiB in the compose cluster) go through
// PUT and GET …/files/content byte for byte, streamed, with the scheduler's
// and the agent's memory bounded far below the file's size; above the
// limit both answer 413; /exec output past 16 MiB is marked.

const fileLimit = 100 << 20

// textOf is exactly n bytes of valid UTF-8 text that JSON must escape in
// many ways: quotes, backslashes, controls, two- to four-byte characters,
// U+2028.
func textOf(n int) []byte {
	unit := "line \"quoted\" \\ tab\t é € 😀 \u2028 ctrl\x01 end\n"
	b := bytes.Repeat([]byte(unit), n/len(unit))
	return append(b, bytes.Repeat([]byte("x"), n-len(b))...)
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// procMem is a process's resident memory (VmRSS) and its peak since the
// last resetPeak (VmHWM), in bytes, read from /proc in the compose
// service's container.
func procMem(t *testing.T, service, comm string) (rss, peak int64) {
	t.Helper()
	out := procShell(t, service, comm, `grep -E '^(VmRSS|VmHWM):' /proc/$pid/status`)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("%s in %s: %q", comm, service, line)
		}
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

// resetPeak makes VmHWM start again from the current resident size.
func resetPeak(t *testing.T, service, comm string) {
	t.Helper()
	procShell(t, service, comm, `echo 5 > /proc/$pid/clear_refs`)
}

// procShell runs script in the service's container with $pid the process
// named comm.
func procShell(t *testing.T, service, comm, script string) string {
	t.Helper()
	find := `pid=; for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ` + comm + ` ] && pid=${p#/proc/}; done; [ -n "$pid" ] || { echo "no process ` + comm + `" >&2; exit 1; }; `
	out, err := exec.Command("docker", "exec", hostContainer(t, service), "sh", "-c", find+script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", comm, service, err, out)
	}
	return strings.TrimSpace(string(out))
}

// memWatch measures how far the scheduler's and one agent's resident
// memory rose above where they were when it started.
type memWatch struct {
	t     *testing.T
	host  string
	base  map[string]int64
	procs [][2]string // service, process name
}

func watchMemory(t *testing.T, host string) *memWatch {
	w := &memWatch{t: t, host: host, base: map[string]int64{},
		procs: [][2]string{{"scheduler", "berth-scheduler"}, {host, "berth-agent"}}}
	for _, p := range w.procs {
		resetPeak(t, p[0], p[1])
		w.base[p[1]], _ = procMem(t, p[0], p[1])
	}
	return w
}

// growth is each process's peak minus its resident size at the start.
func (w *memWatch) growth() map[string]int64 {
	out := map[string]int64{}
	for _, p := range w.procs {
		_, peak := procMem(w.t, p[0], p[1])
		out[p[1]] = peak - w.base[p[1]]
	}
	return out
}

func TestLargeFiles(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("e2e-user"))
	ws := k.mustCreate(t, uniqueID("e2e-sess"), uniqueID("e2e-bigfiles"), nil)
	content := "/workspaces/" + ws.ID + "/files/content"
	inContainer := func(t *testing.T, script string) string {
		t.Helper()
		return innerDocker(t, ws.ServerID, "exec", "-u", "dev", "-w", "/home/dev", ws.ContainerID, "bash", "-c", script)
	}

	// put sends the file as the podex API does: one JSON body.
	put := func(t *testing.T, path string, text []byte) (response, time.Duration) {
		t.Helper()
		body, err := json.Marshal(map[string]string{"path": path, "content": string(text)})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := k.do(t, http.MethodPut, content, body)
		return r, time.Since(start)
	}
	get := func(t *testing.T, path string) (response, time.Duration) {
		t.Helper()
		start := time.Now()
		r := k.do(t, http.MethodGet, content+"?path="+url.QueryEscape(path), nil)
		return r, time.Since(start)
	}

	roundTrip := func(t *testing.T, size int, measure bool) {
		text := textOf(size)
		path := fmt.Sprintf("big/%d.txt", size)
		var mem *memWatch
		if measure {
			mem = watchMemory(t, ws.ServerID)
		}
		r, putTook := put(t, path, text)
		if r.status != http.StatusNoContent {
			t.Fatalf("PUT of %d bytes: got %.300s, want 204", size, r)
		}
		var putGrowth map[string]int64
		if measure {
			putGrowth = mem.growth()
		}
		if got := inContainer(t, "sha256sum < "+path); !strings.HasPrefix(got, sha(text)) {
			t.Errorf("file in the container: sha256 %s, want %s", got, sha(text))
		}
		if measure {
			mem = watchMemory(t, ws.ServerID)
		}
		r, getTook := get(t, path)
		if r.status != http.StatusOK {
			t.Fatalf("GET of %d bytes: got %.300s, want 200", size, r)
		}
		var getGrowth map[string]int64
		if measure {
			getGrowth = mem.growth()
		}
		var got struct{ Path, Content string }
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("GET body: %v", err)
		}
		if got.Path != path || len(got.Content) != size || sha([]byte(got.Content)) != sha(text) {
			t.Errorf("GET: path %q and %d bytes, want %q and the %d bytes written", got.Path, len(got.Content), path, size)
		}
		mib := float64(size) / (1 << 20)
		fmt.Printf("FILES size=%dMiB put=%s (%.0f MiB/s) get=%s (%.0f MiB/s)\n", size>>20,
			putTook.Round(time.Millisecond), mib/putTook.Seconds(), getTook.Round(time.Millisecond), mib/getTook.Seconds())
		if !measure {
			return
		}
		// The baseline: the same bytes through the host's own docker CLI
		// and dockerd, in and out of the same container.
		inHost := func(script string) time.Duration {
			start := time.Now()
			out, err := exec.Command("docker", "exec", hostContainer(t, ws.ServerID), "sh", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", script, err, out)
			}
			return time.Since(start)
		}
		baseGet := inHost(fmt.Sprintf("docker exec -u dev %s cat /home/dev/%s > /dev/null", ws.ContainerID, path))
		basePut := inHost(fmt.Sprintf("head -c %d /dev/zero | docker exec -i -u dev %s sh -c 'cat > /tmp/baseline'", size, ws.ContainerID))
		fmt.Printf("FILES_BASELINE size=%dMiB docker_exec_in=%s docker_exec_out=%s put_ratio=%.2f get_ratio=%.2f\n", size>>20,
			basePut.Round(time.Millisecond), baseGet.Round(time.Millisecond), putTook.Seconds()/basePut.Seconds(), getTook.Seconds()/baseGet.Seconds())
		for _, phase := range []struct {
			name   string
			growth map[string]int64
		}{{"PUT", putGrowth}, {"GET", getGrowth}} {
			for proc, g := range phase.growth {
				fmt.Printf("FILES_RSS size=%dMiB phase=%s process=%s growth=%.1fMB\n", size>>20, phase.name, proc, float64(g)/1e6)
				if g >= 32e6 {
					t.Errorf("%s of %d MiB: %s grew by %.1f MB, want < 32 MB", phase.name, size>>20, proc, float64(g)/1e6)
				}
			}
		}
	}

	t.Run("20 MiB round trip", func(t *testing.T) { roundTrip(t, 20<<20, false) })
	t.Run("100 MiB round trip, memory bounded", func(t *testing.T) { roundTrip(t, fileLimit, true) })

	t.Run("above the limit: 413 both ways", func(t *testing.T) {
		want := fmt.Sprintf("File too large: %d bytes; the limit is %d bytes (100 MiB)", fileLimit+1, fileLimit)
		if r, _ := put(t, "big/over.txt", textOf(fileLimit+1)); r.status != http.StatusRequestEntityTooLarge || r.detail() != want {
			t.Errorf("PUT: got %.300s, want 413 %s", r, want)
		}
		if got := inContainer(t, "test -e big/over.txt && echo written || echo absent"); got != "absent" {
			t.Errorf("the refused file is %s", got)
		}
		inContainer(t, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a > big/over.txt", fileLimit+1))
		if r, _ := get(t, "big/over.txt"); r.status != http.StatusRequestEntityTooLarge || r.detail() != want {
			t.Errorf("GET: got %.300s, want 413 %s", r, want)
		}
	})

	t.Run("a file that is not text: 404 before any 200", func(t *testing.T) {
		inContainer(t, `printf 'ok\n\377' > big/binary`)
		want := "Failed to read file: output is not valid UTF-8 (byte 0xff at offset 3)"
		if r, _ := get(t, "big/binary"); r.status != http.StatusNotFound || r.detail() != want {
			t.Errorf("got %s, want 404 %s", r, want)
		}
	})

	t.Run("exec output past 16 MiB is marked", func(t *testing.T) {
		res := k.exec(t, ws.ID, map[string]any{"command": "head -c 20971520 /dev/zero | tr '\\0' x"})
		want := "[berth: stdout truncated: 4194304 bytes beyond the 16 MiB limit were not returned]\n"
		if res.ExitCode != 0 || len(res.Stdout) != 16<<20 || strings.Trim(res.Stdout, "x") != "" || res.Stderr != want {
			t.Errorf("got exit %d, %d bytes of stdout, stderr %q; want 0, 16 MiB of x, %q", res.ExitCode, len(res.Stdout), res.Stderr, want)
		}
	})
}
