#!/usr/bin/env bash
# Runs the nested interop module (test/interop) with -v, so the reason of
# every skipped client is printed, then repeats the skips in a loud banner.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log=$(mktemp "${TMPDIR:-/tmp}/wsd-interop-XXXXXX.log")
trap 'rm -f "$log"' EXIT

cd "$root/test/interop"
go test -race -count=1 -timeout "${TEST_TIMEOUT:-5m}" -v ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

if grep -q -- '--- SKIP' "$log"; then
	printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	echo "!! INTEROP: some clients were NOT tested:"
	grep -E -- '--- SKIP|SKIP \(LOUD\)' "$log" | sed 's/^ */!!   /'
	echo "!! Install them with scripts/install-test-deps.sh (as root)."
	printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
exit "$rc"
