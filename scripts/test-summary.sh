#!/usr/bin/env bash
# test-summary.sh: pass `go test -v` output through, keep the exit status, and
# end with one line "N passed, N failed, N skipped" counted from the top-level
# tests.
set -uo pipefail
pass=0 fail=0 skip=0
while IFS= read -r line; do
	printf '%s\n' "$line"
	case $line in
	"--- PASS: "*) pass=$((pass + 1)) ;;
	"--- FAIL: "*) fail=$((fail + 1)) ;;
	"--- SKIP: "*) skip=$((skip + 1)) ;;
	FAIL*) [[ $line == FAIL ]] || fail=$((fail > 0 ? fail : 1)) ;;
	esac
done
echo "e2e: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
