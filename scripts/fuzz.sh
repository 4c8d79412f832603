#!/usr/bin/env bash
# Runs every fuzz target of the main module for FUZZTIME each (default 10s):
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime $FUZZTIME ./pkg
# Targets are found with grep ("^func Fuzz" in *_test.go), so new ones are
# picked up without editing this file. Nested modules (directories with their
# own go.mod, e.g. test/interop) are left out.
#
# Every target runs even when one fails; the exit status is non-zero if any
# failed. A failing input is saved by go test under pkg/testdata/fuzz/FuzzX/.
set -uo pipefail

FUZZTIME=${FUZZTIME:-10s}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Directories of nested modules, to exclude.
mapfile -t nested < <(find . -mindepth 2 -name go.mod -not -path '*/node_modules/*' -printf '%h\n' | sed 's|^\./||')

in_nested() {
	local dir=$1 n
	for n in "${nested[@]}"; do
		[[ $dir == "$n" || $dir == "$n"/* ]] && return 0
	done
	return 1
}

targets=() # "pkgdir FuzzName"
while IFS=: read -r file line; do
	dir=$(dirname "${file#./}")
	in_nested "$dir" && continue
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$line")
	targets+=("$dir $name")
done < <(grep -r --include='*_test.go' --exclude-dir=node_modules --exclude-dir=testdata --exclude-dir=vendor --exclude-dir=.git \
	-E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)

if ((${#targets[@]} == 0)); then
	echo "fuzz: no fuzz targets found"
	exit 0
fi

echo "fuzz: ${#targets[@]} target(s), ${FUZZTIME} each"
failed=()
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	echo "fuzz: === $name in ./$dir"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "./$dir"; then
		failed+=("./$dir $name")
	fi
done

if ((${#failed[@]} > 0)); then
	echo
	echo "fuzz: FAILED targets (crashing inputs are in <pkg>/testdata/fuzz/<target>/):"
	printf 'fuzz:   %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${FUZZTIME} without a failure"
