#!/usr/bin/env bash
# `make test-allocs`: the allocation checks, without -race. Under -race
# sync.Pool drops items at random, so every testing.AllocsPerRun lives in a
# file built only without it (//go:build !race): absent from the race pass,
# run here. This script finds those files in the main module (grep, so new
# ones are picked up), fails if one lacks the constraint, and runs exactly
# the tests they define; it fails too if fewer of them passed than exist.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
TEST_LOGS=${TEST_LOGS:-$root/bin/test-logs}
REPORT=${REPORT:-$root/bin/testreport}
mkdir -p "$TEST_LOGS"
[[ -x $REPORT ]] || "$GO" build -o "$REPORT" ./scripts/testreport

# Directories of nested modules (their own go.mod), to leave out.
mapfile -t nested < <(find . -mindepth 2 -name go.mod -not -path '*/node_modules/*' -printf '%h/\n')
mapfile -t files < <(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=testdata --exclude-dir=.git \
	'testing\.AllocsPerRun' . | sort)

pkgs=() tests=() bad=()
for f in "${files[@]}"; do
	skip=
	for n in "${nested[@]}"; do [[ $f == "$n"* ]] && skip=1; done
	[[ -n $skip ]] && continue
	grep -qx '//go:build !race' "$f" || bad+=("$f")
	pkgs+=("./$(dirname "${f#./}")/")
	mapfile -t -O "${#tests[@]}" tests < <(sed -n -E 's/^func (Test[A-Za-z0-9_]*)\(t \*testing\.T\).*/\1/p' "$f")
done

if ((${#bad[@]} > 0)); then
	echo "allocs: these files call testing.AllocsPerRun but lack the line //go:build !race"
	echo "allocs: (under -race the counts mean nothing; the check must not exist there):"
	printf 'allocs:   %s\n' "${bad[@]}"
	exit 1
fi
if ((${#tests[@]} == 0)); then
	echo "allocs: no allocation checks found (grep testing.AllocsPerRun)"
	exit 1
fi
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
run="^($(IFS='|'; echo "${tests[*]}"))\$"
echo "allocs: ${#tests[@]} test(s) in ${pkgs[*]}"

log="$TEST_LOGS/allocs.json"
"$GO" test -count=1 -timeout "${TEST_TIMEOUT:-5m}" -run "$run" -json "${pkgs[@]}" | "$REPORT" filter "$log"
# Every test found must have run and passed: a test renamed or moved out of
# its file would otherwise go unnoticed.
"$REPORT" summary -min-passed "${#tests[@]}" "$log"
echo "allocs: all ${#tests[@]} allocation test(s) passed without -race"
