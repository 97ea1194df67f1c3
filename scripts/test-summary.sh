#!/usr/bin/env bash
# test-summary.sh LABEL: pass `go test -v` output through, count the
# top-level tests, add them to .artifacts/test-counts, and end with
# "LABEL: N passed, N failed, N skipped". It fails when a test or a package
# failed. `test-summary.sh --total` prints the sum of every count recorded
# since `--reset`.
set -uo pipefail
cd "$(dirname "$0")/.."
counts=.artifacts/test-counts
case ${1:-} in
--reset) mkdir -p .artifacts && : >"$counts"; exit 0 ;;
--total)
	awk '{ p += $1; f += $2; s += $3 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0) }' "$counts"
	exit $?
	;;
esac
label=${1:-tests}
pass=0 fail=0 skip=0 broken=0
while IFS= read -r line; do
	printf '%s\n' "$line"
	case $line in
	"--- PASS: "*) pass=$((pass + 1)) ;;
	"--- FAIL: "*) fail=$((fail + 1)) ;;
	"--- SKIP: "*) skip=$((skip + 1)) ;;
	"FAIL"*) broken=1 ;; # a package that failed, or did not build
	esac
done
((broken && fail == 0)) && fail=1
mkdir -p .artifacts
echo "$pass $fail $skip" >>"$counts"
echo "$label: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
