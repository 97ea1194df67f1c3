#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target of the module (func FuzzXxx in a
# *_fuzz_test.go file) for a bounded time each, and fail on any finding.
#
#   scripts/fuzz.sh                      every target, BERTH_FUZZTIME each
#   scripts/fuzz.sh ./agent/...          the targets of some packages
#   BERTH_FUZZTIME=1m scripts/fuzz.sh    longer (any go test -fuzztime: 30s, 10000x)
#   BERTH_FUZZMINIMIZETIME=1s            go test -fuzzminimizetime
#
# Go fuzzes one target per run. `go test -fuzz` would relink the test
# binary for every target (~7 s each here, more than the fuzzing itself),
# so each package's fuzz-instrumented test binary is built once
# (`go test -c -fuzz=.`), its targets listed with -test.list '^Fuzz', and
# each run with -test.run='^$' -test.fuzz='^FuzzX$' -test.fuzztime: what
# `go test -run '^$' -fuzz '^FuzzX$' -fuzztime` does, from the package
# directory and with go test's own corpus cache ($GOCACHE/fuzz/<package>),
# so what one run found interesting seeds the next.
#
# A finding fails the run: the test binary writes the failing input to the
# package's testdata/fuzz/FuzzX/ (commit it as a regression seed once
# fixed) and prints the `go test -run=FuzzX/<name>` line that replays it.
# Plain `go test` runs every seed corpus as unit tests anyway.
#
# Output is go test -v style (=== RUN / --- PASS / --- FAIL), for
# scripts/test-summary.sh; the last line gives the total time.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${BERTH_FUZZTIME:-5s}
# Minimizing each new interesting input may take up to 60 s by default, in
# which a worker runs nothing new: with a few seconds per target that was
# most of the time (FuzzExtract: 36 execs in 15 s, against 1588 with 1 s).
# A failing input is saved whether or not it could be minimized.
MINIMIZETIME=${BERTH_FUZZMINIMIZETIME:-1s}
if (($# == 0)); then
	set -- ./...
fi

log() { printf 'fuzz: %s\n' "$*" >&2; }

# Packages with fuzz targets, as "import-path directory".
mapfile -t pkgs < <(go list -e -f '{{.ImportPath}} {{.Dir}}{{range .TestGoFiles}} {{.}}{{end}}{{range .XTestGoFiles}} {{.}}{{end}}' "$@" |
	awk '{ for (i = 3; i <= NF; i++) if ($i ~ /_fuzz_test\.go$/) { print $1, $2; next } }')
if ((${#pkgs[@]} == 0)); then
	log "no fuzz targets in $*"
	exit 0
fi

# fuzz_one BIN DIR NAME runs one target, its output on stdout, and echoes
# pass, fail or skip on fd 3. A run that fails
# with Go's bare "context deadline exceeded" and writes no input is the
# fuzzing coordinator's shutdown race at the -fuzztime boundary (go1.26,
# go.dev/issue/75804, fixed in go1.27), not a finding: it is run once more,
# and if that happens again the target counts as skipped, said so. Any
# other failure, and every one that wrote an input, fails.
fuzz_one() {
	local bin=$1 dir=$2 name=$3 out attempt before after
	out=$(mktemp)
	for attempt in 1 2; do
		before=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort)
		if (cd "$dir" && "$bin" -test.v -test.run='^$' -test.fuzz="^$name\$" -test.fuzztime="$FUZZTIME" \
			-test.fuzzminimizetime="$MINIMIZETIME" -test.fuzzcachedir="$cache/$pkg") >"$out" 2>&1; then
			cat "$out"
			rm -f "$out"
			echo pass >&3
			return
		fi
		after=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort)
		if [[ $before != "$after" ]] || ! grep -q '^    context deadline exceeded$' "$out"; then
			cat "$out"
			echo "FAIL	$pkg $name"
			rm -f "$out"
			echo fail >&3
			return
		fi
		sed -e 's/^--- FAIL: /--- (coordinator deadline race, no input) /' -e 's/^FAIL$/(retried: coordinator deadline race)/' "$out"
		log "$name: the fuzzing coordinator's deadline race (go.dev/issue/75804), no input written; attempt $attempt of 2"
	done
	rm -f "$out"
	echo "--- SKIP: $name (the coordinator's deadline race twice, no input written)"
	echo skip >&3
}

exec 4>&1 # the output, while fd 1 carries fuzz_one's verdict
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
cache=$(go env GOCACHE)/fuzz
start=$SECONDS
failed=()
flaked=()
targets=0
for entry in "${pkgs[@]}"; do
	read -r pkg dir <<<"$entry"
	bin=$bindir/$(echo "$pkg" | tr '/' '_').test
	if ! go test -c -fuzz=. -o "$bin" "$pkg"; then
		echo "FAIL	$pkg [build failed]"
		failed+=("$pkg")
		continue
	fi
	mapfile -t names < <(cd "$dir" && "$bin" -test.list '^Fuzz' | grep '^Fuzz' || true)
	for name in "${names[@]}"; do
		targets=$((targets + 1))
		log "$pkg $name for $FUZZTIME"
		case $(fuzz_one "$bin" "$dir" "$name" 3>&1 >&4) in
		pass) ;;
		skip) flaked+=("$pkg $name") ;;
		*) failed+=("$pkg $name") ;;
		esac
	done
done
log "$targets targets in ${#pkgs[@]} packages, $((SECONDS - start)) s"
if ((${#flaked[@]} > 0)); then
	log "skipped after the coordinator's deadline race twice: ${flaked[*]}"
fi
if ((${#failed[@]} > 0)); then
	log "findings (inputs in each package's testdata/fuzz/): ${failed[*]}"
	exit 1
fi
