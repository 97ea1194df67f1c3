#!/usr/bin/env bash
# bench.sh: run berth's benchmarks and print the ratios the README quotes.
# Every ratio compares two measurements taken in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench 'BenchmarkPlace' -benchtime 2s ./scheduler/internal/placement/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkReserveAndInsert|BenchmarkDurableCommit' -benchtime 2s ./scheduler/internal/registry/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkCreate$' -benchtime 3s ./scheduler/internal/app/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkCreateToRunning' -benchtime 20x ./scheduler/internal/app/ | tee -a "$out"
# Interactive streams on the compose cluster (scheduler/e2e/bench_streams_test.go):
# terminal echo, preview proxy, 200 terminals held for a minute; about 3 min.
# Then a 1 GiB home moved between the hosts against tar | tar
# (scheduler/e2e/bench_homes_test.go); about 1 min. Then workspace
# create->running and exec under runsc vs runc (bench_sandbox_test.go); 1 min.
# They need the test-only workspace image (the e2e test app, bin/testapp from
# make build) loaded into the hosts: BERTH_TEST_IMAGES=1 has build-images.sh
# build it (IMAGES= : nothing else; cached, about 1 s) and cluster-up.sh load it.
export BERTH_TEST_IMAGES=1
IMAGES='' scripts/build-images.sh
scripts/dev-certs.sh >/dev/null
scripts/cluster-up.sh >/dev/null
streams=ok
BERTH_E2E=1 BERTH_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestBench(Interactive|TerminalsHeld|HomeMove|SandboxRuntimes)$' ./scheduler/e2e/ |
	tee -a "$out" || streams=failed
# ns NAME: the third field (the value) of the first line whose name matches NAME (a regex).
ns() { awk -v n="$1" '$1 ~ n {print $3; exit}' "$out"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ms() { awk -v a="$1" 'BEGIN { if (a != "") printf "%.2f ms", a / 1e6; else print "n/a" }'; }
diffms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "") printf "%+.2f ms", (a - b) / 1e6; else print "n/a" }'; }
s() { ns "BenchmarkStreams/$1\$"; }
echo
echo "== ratios (same run)"
echo "create through HTTP API / bare durable registry insert: $(ratio "$(ns 'BenchmarkCreate/http_api-')" "$(ns 'BenchmarkCreate/registry_insert')")x"
echo "create-to-running berth / plain Docker API create+start: $(ratio "$(ns 'CreateToRunning/berth')" "$(ns 'CreateToRunning/docker_api')")x"
echo "placement 10,000 servers / 10 servers: $(ratio "$(ns 'BenchmarkPlace/nodes=10000')" "$(ns 'BenchmarkPlace/nodes=10-')")x"
echo "terminal keystroke->echo berth / TTY exec on the host's socket (same tmux session), p50: $(ratio "$(s terminal_echo/berth/p50)" "$(s terminal_echo/docker_exec/p50)")x ($(ms "$(s terminal_echo/berth/p50)") vs $(ms "$(s terminal_echo/docker_exec/p50)")), p99: $(ratio "$(s terminal_echo/berth/p99)" "$(s terminal_echo/docker_exec/p99)")x ($(ms "$(s terminal_echo/berth/p99)") vs $(ms "$(s terminal_echo/docker_exec/p99)"))"
echo "preview proxy 100 MB body / direct to the app: $(ratio "$(s preview_big/berth)" "$(s preview_big/direct)")x ($(s preview_big/berth) vs $(s preview_big/direct) MB/s; goal >= 0.8x)"
echo "preview proxy /json requests/s, 16 connections / direct: $(ratio "$(s preview_json_rps/berth)" "$(s preview_json_rps/direct)")x ($(s preview_json_rps/berth) vs $(s preview_json_rps/direct) req/s)"
echo "preview proxy /json added latency, sequential: p50 $(diffms "$(s preview_json_seq/berth/p50)" "$(s preview_json_seq/direct/p50)"), p99 $(diffms "$(s preview_json_seq/berth/p99)" "$(s preview_json_seq/direct/p99)") (goal <= 5 ms)"
echo "200 terminals held $(s held/hold_seconds) s: scheduler RSS $(s held/scheduler/rss_held) MB = $(ratio "$(s held/scheduler/rss_held)" "$(s held/scheduler/rss_idle)")x idle ($(s held/scheduler/kb_per_terminal) KB/terminal), CPU $(s held/scheduler/cpu_held) % of a core (idle $(s held/scheduler/cpu_idle) %)"
echo "200 terminals held $(s held/hold_seconds) s: both agents RSS $(s held/agents/rss_held) MB = $(ratio "$(s held/agents/rss_held)" "$(s held/agents/rss_idle)")x idle ($(s held/agents/kb_per_terminal) KB/terminal), CPU $(s held/agents/cpu_held) % of a core (idle $(s held/agents/cpu_idle) %)"
echo "home move of $(s home_move/mib) MiB host to host / tar | tar between the same hosts: $(ratio "$(s home_move/berth_mib_s)" "$(s home_move/tar_mib_s)")x ($(s home_move/berth_mib_s) vs $(s home_move/tar_mib_s) MiB/s; berth copies over mTLS, flushes, re-reads and verifies)"
echo "workspace create->running runsc / runc (same host, interleaved), p50: $(ratio "$(s sandbox/runsc/create_to_running/p50)" "$(s sandbox/runc/create_to_running/p50)")x ($(ms "$(s sandbox/runsc/create_to_running/p50)") vs $(ms "$(s sandbox/runc/create_to_running/p50)"))"
echo "exec round trip through the agent runsc / runc, p50: $(ratio "$(s sandbox/runsc/exec/p50)" "$(s sandbox/runc/exec/p50)")x ($(ms "$(s sandbox/runsc/exec/p50)") vs $(ms "$(s sandbox/runc/exec/p50)"))"
if [[ $streams != ok ]]; then
	echo "bench: the interactive-stream measurements failed (go test output above, full log in the run)" >&2
	exit 1
fi
