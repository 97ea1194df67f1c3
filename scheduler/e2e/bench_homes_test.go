package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBenchHomeMove measures a home move between the two hosts against a
// plain `tar | tar` of the same directory between the same hosts, in the
// same run: BERTH_BENCH_HOME_MB (default 1024) MiB of home, as one large
// file and 4,000 small ones (a quarter of the bytes). The move is berth's
// whole path (export, agent → agent over mTLS, extract, flush, re-read and
// verify, swap); the baseline is `tar -c` on one host piped over a plain
// TCP connection into `tar -x` on the other: no TLS, no checksum, no flush.
func TestBenchHomeMove(t *testing.T) {
	needBench(t)
	mb := envInt("BERTH_BENCH_HOME_MB", 1024)
	k := composeAPI().as(uniqueID("bench-home"))
	from, to := hosts[0].id, hosts[1].id
	ws := placeOn(t, k, uniqueID("s"), from)
	k.purgeOnCleanup(t, ws.ID)
	small := mb / 4
	res := k.exec(t, ws.ID, map[string]any{"timeout": 600, "command": fmt.Sprintf(
		`set -e; head -c %dM /dev/urandom > big.bin; mkdir -p many; `+
			`for i in $(seq 1 4000); do head -c %d /dev/urandom > many/f$i; done; du -sm . | cut -f1`, mb-small, small<<20/4000)})
	if res.ExitCode != 0 {
		t.Fatalf("fill the home: %+v", res)
	}
	t.Logf("home of %s MiB on %s", strings.TrimSpace(res.Stdout), from)

	setState(t, from, "draining")
	start := time.Now()
	if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil); r.status != http.StatusNoContent {
		t.Fatalf("restart (the move): %s", r)
	}
	restart := time.Since(start)
	moved := moveFigures(t, ws.ID)

	// The baseline: the same directory, now on `to`, back to `from` with
	// tar over a plain TCP connection between the two hosts (perl is the
	// only socket tool in the host image).
	dst := "/var/lib/berth/bench-tar-" + ws.ID
	fromCtr, toCtr := hostContainer(t, from), hostContainer(t, to)
	t.Cleanup(func() { _ = exec.Command("docker", "exec", fromCtr, "rm", "-rf", dst).Run() })
	receive := exec.Command("docker", "exec", fromCtr, "bash", "-o", "pipefail", "-c", "mkdir -p "+dst+" && perl -MIO::Socket::INET -e '"+
		`$s = IO::Socket::INET->new(Listen => 1, LocalPort => 9077, ReuseAddr => 1) or die $!; $c = $s->accept; `+
		`binmode $c; while (sysread($c, $b, 1 << 16)) { syswrite(STDOUT, $b) }' | tar -C `+dst+" -xf -")
	send := exec.Command("docker", "exec", toCtr, "bash", "-o", "pipefail", "-c", "tar -C "+dataRoot+"/"+ws.ID+"/home -cf - . | perl -MIO::Socket::INET -e '"+
		`for (1 .. 200) { $c = IO::Socket::INET->new(PeerAddr => "`+from+`:9077") and last; select(undef, undef, undef, 0.05) } $c or die $!; `+
		`binmode $c; while (sysread(STDIN, $b, 1 << 16)) { syswrite($c, $b) }'`)
	start = time.Now()
	if err := receive.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("tar | tar, sending side: %v\n%s", err, out)
	}
	if err := receive.Wait(); err != nil {
		t.Fatalf("tar | tar, receiving side: %v", err)
	}
	tarSeconds := time.Since(start).Seconds()

	mibs := float64(moved.Bytes) / (1 << 20)
	benchLine("home_move/berth_mib_s", 1, mibs/moved.Seconds, "MiB/s")
	benchLine("home_move/tar_mib_s", 1, mibs/tarSeconds, "MiB/s")
	benchLine("home_move/berth_seconds", 1, moved.Seconds, "s")
	benchLine("home_move/restart_seconds", 1, restart.Seconds(), "s")
	benchLine("home_move/tar_seconds", 1, tarSeconds, "s")
	benchLine("home_move/mib", 1, mibs, "MiB")
}

type moveData struct {
	Bytes   int64   `json:"bytes"`
	Files   int64   `json:"files"`
	Seconds float64 `json:"seconds"`
}

// moveFigures reads the home.move.finished event of a workspace.
func moveFigures(t *testing.T, id string) moveData {
	t.Helper()
	for _, e := range workspaceEvents(t, id) {
		if e.Kind == "home.move.finished" {
			var d moveData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatalf("no home.move.finished event for %s", id)
	return moveData{}
}
