#!/usr/bin/env bash
# `make test-interop`: the nested interop module (test/interop) under -race.
# The go test -json stream goes to $TEST_LOGS/interop.json and through
# testreport, which prints failures in full and every skipped client with
# its reason (make test lists the skips again at the end).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
TEST_LOGS=${TEST_LOGS:-$root/bin/test-logs}
REPORT=${REPORT:-$root/bin/testreport}
mkdir -p "$TEST_LOGS"
[[ -x $REPORT ]] || "$GO" build -o "$REPORT" "$root/scripts/testreport"

cd "$root/test/interop"
"$GO" test -race -count=1 -timeout "${TEST_TIMEOUT:-5m}" -json ./... | "$REPORT" filter "$TEST_LOGS/interop.json"
