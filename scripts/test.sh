#!/usr/bin/env bash
# `make test`: runs every step even when an earlier one fails, then prints
# which failed, how long each took, and every test that was skipped.
# Exit status: non-zero if any step failed (and, under CI=true, if any test
# was skipped).
#   1. scripts/install-test-deps.sh   (under CI=true fails when it cannot install)
#   2. go vet (main module and test/interop)
#   3. go test -race -count=1 ./...   (main module)
#   4. scripts/allocs.sh: the allocation checks, without -race
#   4b. test/soak without -race: 60 s churn soak, 100 slow + 1,000 healthy subscribers
#   5. test/interop: go test -race -count=1 ./...  (third-party clients vs the wsd binary)
#   6. test/browser: go vet, go test -count=1 ./...  (the demo page in headless Chromium)
#   7. scripts/fuzz.sh with FUZZTIME=10s  (every fuzz target)
# Steps 3–6 (and test-soak) log go test -json to bin/test-logs/; the skip list is read from there.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

steps=(test-deps vet test-unit test-allocs test-soak test-interop test-browser fuzz-short)

# Logs of earlier runs must not show up in this run's skip list.
export TEST_LOGS="$root/bin/test-logs"
rm -rf "$TEST_LOGS"

results=()
failed=0
start=$SECONDS

for step in "${steps[@]}"; do
	printf '\n==== make %s ====\n' "$step"
	t0=$SECONDS
	if make --no-print-directory "$step"; then
		status=ok
	else
		status=FAILED
		failed=$((failed + 1))
	fi
	results+=("$(printf '%-13s %-6s %4ss' "$step" "$status" $((SECONDS - t0)))")
done

printf '\n==== make test summary (%ss) ====\n' $((SECONDS - start))
printf '  %s\n' "${results[@]}"
# Under CI=true a skipped test fails the run (make test-skips -ci).
if ! make --no-print-directory test-skips; then
	echo "make test: FAILED (skipped tests under CI=true, or no test logs: see above)"
	exit 1
fi
if ((failed > 0)); then
	echo "make test: FAILED ($failed of ${#steps[@]} steps)"
	exit 1
fi
echo "make test: every step succeeded"
