#!/usr/bin/env bash
# Installs what the tests need, when it is missing:
#   - Debian python3-websockets   (test/interop: Python client)
#   - nodejs and npm, if absent   (test/interop: Node client)
#   - npm ws into test/interop/node/node_modules (npm ci from package-lock.json)
#   - Debian nginx-light           (test/e2e: wss through a TLS-terminating nginx)
#   - Debian chromium              (test/e2e and bench: headless browser checks)
# Go modules come through the Go module proxy when `go test` runs.
#
# It never fails the build: when something cannot be installed (not root and
# no passwordless sudo, no network, ...) it prints a LOUD message and goes on;
# the tests that need the missing piece then skip and say why.
#
# Safe to run again: a present dependency is left alone, and `apt-get update`
# runs at most once, only when a Debian package is missing.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nodedir="$root/test/interop/node"
problems=()

say() { printf 'install-test-deps: %s\n' "$*"; }

loud() {
	problems+=("$*")
	printf '\n%s\n' "######################################################################" >&2
	printf '## install-test-deps: %s\n' "$*" >&2
	printf '%s\n\n' "######################################################################" >&2
}

# python_has_websockets: the interop test looks in $WSD_PYTHON, else
# /usr/bin/python3 (where Debian installs python3-websockets), then python3.
python_has_websockets() {
	local py
	for py in ${WSD_PYTHON:-/usr/bin/python3 python3}; do
		if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import websockets' >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

# ---- Debian packages -------------------------------------------------------
apt_missing=()
python_has_websockets || apt_missing+=(python3-websockets)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
# NodeSource's nodejs bundles npm; Debian's does not.
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
# test/e2e: TLS termination in front of wsd, and the browser demo test.
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || apt_missing+=(nginx-light)
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)

if ((${#apt_missing[@]} == 0)); then
	say "Debian packages: nothing missing (python3-websockets, node, npm present)"
else
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		fi
	fi
	if [[ $(id -u) -ne 0 && ${#sudo[@]} -eq 0 ]]; then
		loud "cannot install ${apt_missing[*]}: not root and no passwordless sudo. Those interop tests will SKIP. As root: apt-get install ${apt_missing[*]}"
	elif ! command -v apt-get >/dev/null 2>&1; then
		loud "cannot install ${apt_missing[*]}: no apt-get on this machine. Those interop tests will SKIP."
	else
		say "installing Debian packages: ${apt_missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
		if ! timeout 300 "${sudo[@]}" apt-get update -q </dev/null; then
			loud "apt-get update failed (no network?); trying to install ${apt_missing[*]} from the cached lists anyway"
		fi
		if ! timeout 600 "${sudo[@]}" apt-get install "${apt_opts[@]}" "${apt_missing[@]}" </dev/null; then
			loud "apt-get install ${apt_missing[*]} failed. Those interop tests will SKIP."
		fi
	fi
fi

if ! python_has_websockets; then
	loud "python3-websockets is still not importable: TestPythonWebsockets will SKIP"
fi

# ---- npm ws ------------------------------------------------------------------
ws_wanted=$(sed -n 's/^ *"ws": *"\([^"]*\)".*/\1/p' "$nodedir/package.json" | head -n1)
ws_have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$nodedir/node_modules/ws/package.json" 2>/dev/null | head -n1)
if [[ -n $ws_have && $ws_have == "$ws_wanted" ]]; then
	say "npm ws $ws_have: already in test/interop/node/node_modules"
elif ! command -v npm >/dev/null 2>&1; then
	loud "npm not available: cannot install ws into test/interop/node. TestNodeWs will SKIP."
else
	say "npm ci in test/interop/node (ws $ws_wanted)"
	if ! (cd "$nodedir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error </dev/null); then
		loud "npm ci in test/interop/node failed (no network?). TestNodeWs will SKIP."
	fi
fi

if ((${#problems[@]} > 0)); then
	printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
	printf '!! install-test-deps: %d problem(s); some interop tests will SKIP:\n' "${#problems[@]}" >&2
	printf '!!   - %s\n' "${problems[@]}" >&2
	printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
else
	say "all test dependencies present"
fi
exit 0
