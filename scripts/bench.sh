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
ns() { awk -v n="$1" '$1 ~ n {print $3; exit}' "$out"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "== ratios (same run)"
echo "create through HTTP API / bare durable registry insert: $(ratio "$(ns 'BenchmarkCreate/http_api-')" "$(ns 'BenchmarkCreate/registry_insert')")x"
echo "create-to-running berth / plain Docker API create+start: $(ratio "$(ns 'CreateToRunning/berth')" "$(ns 'CreateToRunning/docker_api')")x"
echo "placement 10,000 servers / 10 servers: $(ratio "$(ns 'BenchmarkPlace/nodes=10000')" "$(ns 'BenchmarkPlace/nodes=10-')")x"
