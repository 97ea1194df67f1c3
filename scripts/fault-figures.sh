#!/usr/bin/env bash
# fault-figures.sh: measure failure detection on the local cluster (the
# README's figures): p50/p99 over BERTH_KILLS host kills (default 20), then
# false positives during BERTH_LOAD_MINUTES (default 10) with every core busy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cluster-up.sh >/dev/null
export BERTH_E2E=1 BERTH_HARNESS=1
go test -count=1 -timeout 60m -v -run "${1:-^TestHarness}" ./scheduler/e2e/ 2>&1 | tee /tmp/berth-fault-figures.log | grep -E '^(DETECTION|FALSE_POSITIVES|--- |ok|FAIL)'
