#!/usr/bin/env bash
# bench.sh: run berth's benchmarks and print the ratios the README quotes.
# Every ratio compares two measurements taken in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Placement: the full scan (Place, what explanations and refusals use) and
# the fleet index every create uses, at 10, 1,000 and 10,000 servers.
go test -run '^$' -bench 'BenchmarkPlace|BenchmarkIndexPlace' -benchtime 2s ./scheduler/internal/placement/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkReserveAndInsert|BenchmarkDurableCommit' -benchtime 2s ./scheduler/internal/registry/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkCreate$' -benchtime 3s ./scheduler/internal/app/ | tee -a "$out"
# Scheduler HA (issue 14, scheduler/internal/cluster): durable reservations on
# one registry vs the leader of three raft schedulers over mTLS, 100 writers;
# then the time from a killed leader to a write taken by the new one (10
# kills, default timings), and the snapshot of 100,000 workspaces (its time,
# its size, a new scheduler filled from it). About 4 minutes.
go test -run '^$' -bench 'BenchmarkReplicatedReserve' -benchtime 3s ./scheduler/internal/cluster/ | tee -a "$out"
BERTH_BENCH=1 go test -count=1 -v -timeout 20m -run '^TestBench(Election|Snapshot)$' ./scheduler/internal/cluster/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkCreateToRunning' -benchtime 20x ./scheduler/internal/app/ | tee -a "$out"
# Durable creates through the HTTP API with 10,000 servers and 100,000
# workspaces in the registry (agents in another process, over mTLS), at 1,
# 10, 100 and 1,000 concurrent clients, and the bare one-row commit in the
# same run. About 3 minutes (most of it filling the registry).
go test -run '^$' -bench 'BenchmarkCreateAtScale' -benchtime 3s -timeout 20m ./scheduler/internal/app/ | tee -a "$out"
# Footprint (scheduler/footprint_test.go): the scheduler with 0, 1,000 and
# 10,000 fake agents in other processes (tools/fakefleet: real mTLS APIs and
# memberlist members) and 10 stopped workspaces per server in its registry;
# then the real agent with 0 and 100 workspaces on this machine's Docker.
# About 15 minutes.
footprint=ok
BERTH_BENCH=1 go test -count=1 -v -timeout 60m -run '^TestBench(Agent)?Footprint$' ./scheduler/ | tee -a "$out" || footprint=failed
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
# Then berth side by side with a two-node Docker Swarm made of throwaway DinD
# containers (bench_swarm_test.go): create->running of one workspace and of 50
# at once, host kill/pause -> detected; about 9 min.
streams=ok
BERTH_E2E=1 BERTH_BENCH=1 go test -count=1 -v -timeout 30m -run '^TestBench(Interactive|TerminalsHeld|HomeMove|SandboxRuntimes|Swarm)$' ./scheduler/e2e/ |
	tee -a "$out" || streams=failed
# Gossip at scale (shared/gossip/scale_bench_test.go): BERTH_BENCH_GOSSIP_MEMBERS
# gossip.Pools in this process, berth's settings then memberlist's
# DefaultLANConfig (same key, label, metadata). 50 by default, about 6 min: on
# 2 cores neither pool converges at 1,000 in one process (README, What was
# measured); BERTH_BENCH_GOSSIP_MEMBERS=1000 shows it (the figures print n/a
# and the test fails after about 25 min).
gossip=ok
BERTH_BENCH=1 BERTH_BENCH_GOSSIP_MEMBERS="${BERTH_BENCH_GOSSIP_MEMBERS:-50}" go test -count=1 -v -timeout 90m \
	-run '^TestBenchGossipScale$' ./shared/gossip/ | tee -a "$out" || gossip=failed
# ns NAME: the third field (the value) of the first line whose name matches NAME (a regex).
ns() { awk -v n="$1" '$1 ~ n {print $3; exit}' "$out"; }
# metric NAME UNIT: the value before UNIT on the first line whose name matches NAME.
metric() { awk -v n="$1" -v u="$2" '$1 ~ n { for (i = 2; i <= NF; i++) if ($i == u) { print $(i - 1); exit } }' "$out"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ms() { awk -v a="$1" 'BEGIN { if (a != "") printf "%.2f ms", a / 1e6; else print "n/a" }'; }
diffms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "") printf "%+.2f ms", (a - b) / 1e6; else print "n/a" }'; }
s() { ns "BenchmarkStreams/$1\$"; }
echo
echo "== ratios (same run)"
echo "create through HTTP API / bare durable registry insert: $(ratio "$(ns 'BenchmarkCreate/http_api-')" "$(ns 'BenchmarkCreate/registry_insert')")x"
echo "durable reservations, leader of 3 raft schedulers / one registry without raft (100 writers): $(ratio "$(metric 'BenchmarkReplicatedReserve/raft-3' 'creates/s')" "$(metric 'BenchmarkReplicatedReserve/local' 'creates/s')")x ($(metric 'BenchmarkReplicatedReserve/raft-3' 'creates/s') vs $(metric 'BenchmarkReplicatedReserve/local' 'creates/s') creates/s)"
grep -o 'leader killed -> .*' "$out" | head -1 || true
grep -o 'FIGURE snapshot: .*' "$out" | head -1 || true
echo "create-to-running berth / plain Docker API create+start: $(ratio "$(ns 'CreateToRunning/berth')" "$(ns 'CreateToRunning/docker_api')")x"
echo "placement, full scan, 10,000 servers / 10 servers: $(ratio "$(ns 'BenchmarkPlace/nodes=10000')" "$(ns 'BenchmarkPlace/nodes=10-')")x"
for st in spread best_fit; do
	echo "placement, fleet index ($st), 10,000 servers / 10 servers: $(ratio "$(ns "BenchmarkIndexPlace/$st/nodes=10000")" "$(ns "BenchmarkIndexPlace/$st/nodes=10-")")x ($(awk -v a="$(ns "BenchmarkIndexPlace/$st/nodes=10000")" 'BEGIN { printf "%.1f", a / 1000 }') us at 10,000; goal <= 3x and <= 20 us)"
done
echo "placement at 10,000 servers, full scan / fleet index (spread): $(ratio "$(ns 'BenchmarkPlace/nodes=10000')" "$(ns 'BenchmarkIndexPlace/spread/nodes=10000')")x"
bare=$(metric 'BenchmarkCreateAtScale/bare_commit' 'commits/s')
echo "bare one-row durable commit: $bare commits/s; scheduler start with 10,000 servers and 100,000 workspaces: $(ms "$(ns 'BenchmarkCreateAtScale/startup')")"
for c in 1 10 100 1000; do
	echo "creates through the HTTP API at 10,000 servers, $c clients: $(metric "BenchmarkCreateAtScale/http_api/clients=$c-" 'creates/s') creates/s = $(ratio "$(metric "BenchmarkCreateAtScale/http_api/clients=$c-" 'creates/s')" "$bare")x the bare commit (goal >= 1x and >= 5,000/s), p50 $(metric "BenchmarkCreateAtScale/http_api/clients=$c-" 'p50-ms') ms, p99 $(metric "BenchmarkCreateAtScale/http_api/clients=$c-" 'p99-ms') ms"
done
echo "terminal keystroke->echo berth / TTY exec on the host's socket (same tmux session), p50: $(ratio "$(s terminal_echo/berth/p50)" "$(s terminal_echo/docker_exec/p50)")x ($(ms "$(s terminal_echo/berth/p50)") vs $(ms "$(s terminal_echo/docker_exec/p50)")), p99: $(ratio "$(s terminal_echo/berth/p99)" "$(s terminal_echo/docker_exec/p99)")x ($(ms "$(s terminal_echo/berth/p99)") vs $(ms "$(s terminal_echo/docker_exec/p99)"))"
echo "preview proxy 100 MB body / direct to the app: $(ratio "$(s preview_big/berth)" "$(s preview_big/direct)")x ($(s preview_big/berth) vs $(s preview_big/direct) MB/s; goal >= 0.8x)"
echo "preview proxy /json requests/s, 16 connections / direct: $(ratio "$(s preview_json_rps/berth)" "$(s preview_json_rps/direct)")x ($(s preview_json_rps/berth) vs $(s preview_json_rps/direct) req/s)"
echo "preview proxy /json added latency, sequential: p50 $(diffms "$(s preview_json_seq/berth/p50)" "$(s preview_json_seq/direct/p50)"), p99 $(diffms "$(s preview_json_seq/berth/p99)" "$(s preview_json_seq/direct/p99)") (goal <= 5 ms)"
echo "200 terminals held $(s held/hold_seconds) s: scheduler RSS $(s held/scheduler/rss_held) MB = $(ratio "$(s held/scheduler/rss_held)" "$(s held/scheduler/rss_idle)")x idle ($(s held/scheduler/kb_per_terminal) KB/terminal), CPU $(s held/scheduler/cpu_held) % of a core (idle $(s held/scheduler/cpu_idle) %)"
echo "200 terminals held $(s held/hold_seconds) s: both agents RSS $(s held/agents/rss_held) MB = $(ratio "$(s held/agents/rss_held)" "$(s held/agents/rss_idle)")x idle ($(s held/agents/kb_per_terminal) KB/terminal), CPU $(s held/agents/cpu_held) % of a core (idle $(s held/agents/cpu_idle) %)"
echo "home move of $(s home_move/mib) MiB host to host / tar | tar between the same hosts: $(ratio "$(s home_move/berth_mib_s)" "$(s home_move/tar_mib_s)")x ($(s home_move/berth_mib_s) vs $(s home_move/tar_mib_s) MiB/s; berth copies over mTLS, flushes, re-reads and verifies)"
echo "workspace create->running runsc / runc (same host, interleaved), p50: $(ratio "$(s sandbox/runsc/create_to_running/p50)" "$(s sandbox/runc/create_to_running/p50)")x ($(ms "$(s sandbox/runsc/create_to_running/p50)") vs $(ms "$(s sandbox/runc/create_to_running/p50)"))"
echo "exec round trip through the agent runsc / runc, p50: $(ratio "$(s sandbox/runsc/exec/p50)" "$(s sandbox/runc/exec/p50)")x ($(ms "$(s sandbox/runsc/exec/p50)") vs $(ms "$(s sandbox/runc/exec/p50)"))"
echo "berth vs Docker Swarm (two DinD nodes, same image and starter limits), create->running of one workspace, p50: $(ratio "$(s swarm/create_one/berth/p50)" "$(s swarm/create_one/swarm/p50)")x ($(ms "$(s swarm/create_one/berth/p50)") vs $(ms "$(s swarm/create_one/swarm/p50)"); goal <= 0.5x), max $(ms "$(s swarm/create_one/berth/max)") vs $(ms "$(s swarm/create_one/swarm/max)"); berth under runc: $(ratio "$(s swarm/create_one/berth_runc/p50)" "$(s swarm/create_one/swarm/p50)")x ($(ms "$(s swarm/create_one/berth_runc/p50)"))"
echo "berth vs Docker Swarm, 50 at once, each create->running, p50: $(ratio "$(s swarm/create_50/berth/p50)" "$(s swarm/create_50/swarm/p50)")x ($(ms "$(s swarm/create_50/berth/p50)") vs $(ms "$(s swarm/create_50/swarm/p50)")), p99: $(ratio "$(s swarm/create_50/berth/p99)" "$(s swarm/create_50/swarm/p99)")x ($(ms "$(s swarm/create_50/berth/p99)") vs $(ms "$(s swarm/create_50/swarm/p99)")), all 50 running: $(ratio "$(s swarm/create_50/berth/all_p50)" "$(s swarm/create_50/swarm/all_p50)")x; berth under runc p50: $(ratio "$(s swarm/create_50/berth_runc/p50)" "$(s swarm/create_50/swarm/p50)")x ($(ms "$(s swarm/create_50/berth_runc/p50)"))"
echo "host killed -> declared gone (berth unreachable / Swarm node down), p50: berth $(ratio "$(s swarm/detect_kill/swarm/p50)" "$(s swarm/detect_kill/berth/p50)")x faster ($(ms "$(s swarm/detect_kill/berth/p50)") vs $(ms "$(s swarm/detect_kill/swarm/p50)"); goal >= 5x), max $(ms "$(s swarm/detect_kill/berth/max)") vs $(ms "$(s swarm/detect_kill/swarm/max)"); host paused instead: $(ratio "$(s swarm/detect_pause/swarm/p50)" "$(s swarm/detect_pause/berth/p50)")x faster ($(ms "$(s swarm/detect_pause/berth/p50)") vs $(ms "$(s swarm/detect_pause/swarm/p50)"))"
f() { local x; x=$(ns "BenchmarkFootprint/$1\$"); echo "${x:-n/a}"; }
for n in 1000 10000; do
	echo "scheduler with $n agents connected ($((n * 10)) workspaces in the registry): RSS $(f "agents=$n/scheduler_rss_mb") MB (goal at 10,000: <= 200 MB), $(f "agents=$n/kib_per_agent") KiB per agent over the run with none (goal <= 10 KiB), CPU $(f "agents=$n/scheduler_cpu_pct") % of a core (goal at 10,000: probes <= 5 %), $(f "agents=$n/scheduler_goroutines") goroutines, $(f "agents=$n/scheduler_open_fds") open files, every server healthy $(f "agents=$n/ready_seconds") s after start"
done
echo "agent RSS with 100 workspaces on its host: $(f 'agent/workspaces=100/agent_rss_mb') MB (goal <= 30 MB; $(f 'agent/workspaces=0/agent_rss_mb') MB with none, $(f 'agent/workspaces=100/kib_per_workspace') KiB per workspace), CPU $(f 'agent/workspaces=100/agent_cpu_pct') %"
if [[ $footprint != ok ]]; then
	echo "bench: the footprint measurement failed (go test output above)" >&2
fi
g() { ns "BenchmarkGossip/$1\$"; }
v() { local x; x=$(g "$1"); echo "${x:-n/a}"; }
secs() { awk -v a="$1" 'BEGIN { if (a != "") printf "%.2f s", a / 1e9; else print "n/a" }'; }
echo "gossip pool of $(v berth/members) members in one process: converged berth $(v berth/converged_members), memberlist default LAN $(v default/converged_members) (the figures below need both converged)"
echo "gossip join seen by all berth / default LAN, p50: $(ratio "$(g berth/join_all/p50)" "$(g default/join_all/p50)")x ($(ms "$(g berth/join_all/p50)") vs $(ms "$(g default/join_all/p50)")), p99: $(ratio "$(g berth/join_all/p99)" "$(g default/join_all/p99)")x ($(ms "$(g berth/join_all/p99)") vs $(ms "$(g default/join_all/p99)"))"
echo "gossip death (no leave) seen by all berth / default LAN, p50: $(ratio "$(g berth/dead_all/p50)" "$(g default/dead_all/p50)")x ($(secs "$(g berth/dead_all/p50)") vs $(secs "$(g default/dead_all/p50)")), p99: $(ratio "$(g berth/dead_all/p99)" "$(g default/dead_all/p99)")x ($(secs "$(g berth/dead_all/p99)") vs $(secs "$(g default/dead_all/p99)"))"
echo "gossip false positives in the steady window, berth vs default LAN: $(v berth/false_positives) vs $(v default/false_positives) members suspected ($(v berth/false_dead) vs $(v default/false_dead) declared dead)"
echo "gossip bytes sent per member berth / default LAN: $(ratio "$(g berth/bytes_per_s_per_member)" "$(g default/bytes_per_s_per_member)")x ($(v berth/bytes_per_s_per_member) vs $(v default/bytes_per_s_per_member) B/s)"
echo "gossip CPU of the whole pool (one process) berth / default LAN: $(ratio "$(g berth/cpu_cores)" "$(g default/cpu_cores)")x ($(v berth/cpu_cores) vs $(v default/cpu_cores) cores)"
if [[ $gossip != ok ]]; then
	echo "bench: gossip at scale did not complete (see converged_members above)" >&2
fi
if [[ $streams != ok ]]; then
	echo "bench: the interactive-stream measurements failed (go test output above, full log in the run)" >&2
	exit 1
fi
