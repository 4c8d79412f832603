#!/usr/bin/env bash
# `make test`: runs every step even when an earlier one fails, then prints
# which failed and how long each took. Exit status: non-zero if any failed.
#   1. scripts/install-test-deps.sh   (never fails; loud when it cannot install)
#   2. go vet (main module and test/interop)
#   3. go test -race -count=1 ./...   (main module)
#   4. test/interop: go test -race -count=1 ./...  (third-party clients vs the wsd binary)
#   5. test/browser: go vet, go test -count=1 -v ./...  (the demo page in headless Chromium)
#   6. scripts/fuzz.sh with FUZZTIME=10s  (every fuzz target)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

steps=(test-deps vet test-unit test-interop test-browser fuzz-short)

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
if ((failed > 0)); then
	echo "make test: FAILED ($failed of ${#steps[@]} steps)"
	exit 1
fi
echo "make test: every step succeeded"
