#!/usr/bin/env bash
# Installs what the tests need from outside Go, when it is missing:
#   - Debian python3-websockets  (test/interop: the Python client)
#   - Debian nodejs and npm      (test/interop: the Node client; client: wsd.js)
#   - npm ws into test/interop/node/node_modules (npm ci from package-lock.json)
#   - Debian nginx-light         (test/e2e: wss through a TLS-terminating nginx)
#   - Debian chromium            (test/browser: the demo page; bench: the HTML report)
#   - nats-server v2.15.3 into bin/ (pubsub/natsbroker, cmd/wsd cluster tests),
#     built from the Go module proxy with `go install`: Debian's 2.9 is too old
#     for the JetStream features wsd uses, and a binary keeps nats-server out
#     of the main module's go.mod
# Go modules come through the Go module proxy when `go test` runs.
#
# It looks where the tests look (the same overrides: WSD_PYTHON, WSD_NODE,
# WSD_CHROMIUM), installs what is missing with one `apt-get update` and one
# non-interactive `apt-get install`, then checks every dependency again.
#
# Under CI=true anything still missing fails this step (exit 1), just as the
# tests that need it fail (internal/testdep). Elsewhere it prints a LOUD
# message and exits 0; those tests then skip and say why.
#
# Safe to run again: a present dependency is left alone, and `apt-get update`
# runs only when a Debian package is missing.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nodedir="$root/test/interop/node"
problems=()

say() { printf 'install-test-deps: %s\n' "$*"; }

# banner prints a loud message; loud also counts it as a problem.
banner() {
	printf '\n%s\n' "######################################################################" >&2
	printf '## install-test-deps: %s\n' "$*" >&2
	printf '%s\n\n' "######################################################################" >&2
}

loud() {
	problems+=("$*")
	banner "$@"
}

# in_ci: CI holds a true value, as internal/testdep reads it (strconv.ParseBool).
in_ci() {
	case "${CI:-}" in
	1 | t | T | true | TRUE | True) return 0 ;;
	esac
	return 1
}

# ---- where the tests look ---------------------------------------------------

# test/interop/python_test.go: $WSD_PYTHON, else /usr/bin/python3 (where
# Debian installs python3-websockets), then python3 on PATH.
have_python_websockets() {
	local py
	for py in ${WSD_PYTHON:-/usr/bin/python3 python3}; do
		if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import websockets' >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

# test/interop/node_test.go: $WSD_NODE, else node on PATH; client/wsdjs_test.go: node.
have_node() { command -v "${WSD_NODE:-node}" >/dev/null 2>&1 && command -v node >/dev/null 2>&1; }

# NodeSource's nodejs bundles npm; Debian's does not.
have_npm() { command -v npm >/dev/null 2>&1; }

# test/e2e/nginx_test.go: /usr/sbin/nginx, /usr/bin/nginx, then PATH.
have_nginx() { [[ -x /usr/sbin/nginx || -x /usr/bin/nginx ]] || command -v nginx >/dev/null 2>&1; }

# test/browser: $WSD_CHROMIUM, else /usr/bin/chromium; bench/report_test.go:
# chromium (or chromium-browser, google-chrome) on PATH.
have_chromium() { [[ -x ${WSD_CHROMIUM:-/usr/bin/chromium} ]] && command -v chromium >/dev/null 2>&1; }

# pubsub/natsbroker/natstest: $WSD_NATS_SERVER, else bin/nats-server, else PATH.
nats_version=v2.15.3
have_nats_server() {
	if [[ -n ${WSD_NATS_SERVER:-} ]]; then [[ -x $WSD_NATS_SERVER ]]; return; fi
	[[ -x $root/bin/nats-server ]] || command -v nats-server >/dev/null 2>&1
}

# The ws version package.json pins, and the one node_modules holds.
ws_wanted() { sed -n 's/^ *"ws": *"\([^"]*\)".*/\1/p' "$nodedir/package.json" | head -n1; }
ws_have() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$nodedir/node_modules/ws/package.json" 2>/dev/null | head -n1; }
have_ws() { local w; w=$(ws_wanted); [[ -n $w && $(ws_have) == "$w" ]]; }

# ---- Debian packages ----------------------------------------------------------
apt_missing=()
have_python_websockets || apt_missing+=(python3-websockets)
have_node || apt_missing+=(nodejs)
have_npm || apt_missing+=(npm)
have_nginx || apt_missing+=(nginx-light)
have_chromium || apt_missing+=(chromium)

if ((${#apt_missing[@]} == 0)); then
	say "Debian packages: nothing missing (python3-websockets, node, npm, nginx, chromium)"
else
	sudo=()
	if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	fi
	if [[ $(id -u) -ne 0 && ${#sudo[@]} -eq 0 ]]; then
		loud "cannot install ${apt_missing[*]}: not root and no passwordless sudo. As root: apt-get install ${apt_missing[*]}"
	elif ! command -v apt-get >/dev/null 2>&1; then
		loud "cannot install ${apt_missing[*]}: no apt-get on this machine"
	else
		say "installing Debian packages: ${apt_missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
		if ! timeout 300 "${sudo[@]}" apt-get update -q </dev/null; then
			banner "apt-get update failed (no network?); trying to install ${apt_missing[*]} from the cached lists anyway"
		fi
		if ! timeout 900 "${sudo[@]}" apt-get install "${apt_opts[@]}" "${apt_missing[@]}" </dev/null; then
			loud "apt-get install ${apt_missing[*]} failed"
		fi
	fi
fi

# ---- npm ws -------------------------------------------------------------------
if have_ws; then
	say "npm ws $(ws_have): already in test/interop/node/node_modules"
elif ! have_npm; then
	loud "npm not available: cannot install ws into test/interop/node"
else
	say "npm ci in test/interop/node (ws $(ws_wanted))"
	if ! (cd "$nodedir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error </dev/null); then
		loud "npm ci in test/interop/node failed (no network?)"
	fi
fi

# ---- nats-server ---------------------------------------------------------------
if have_nats_server; then
	say "nats-server: already there"
elif ! command -v "${GO:-go}" >/dev/null 2>&1; then
	loud "go not found: cannot build nats-server into bin/"
else
	say "building nats-server $nats_version into bin/ (go install from the module proxy)"
	mkdir -p "$root/bin"
	if ! (cd "$root" && GOBIN="$root/bin" GOFLAGS=-mod=mod timeout 600 "${GO:-go}" install "github.com/nats-io/nats-server/v2@$nats_version" </dev/null); then
		loud "go install nats-server $nats_version failed (no network?)"
	fi
fi

# ---- check everything again, where the tests look ------------------------------
missing=()
have_python_websockets || missing+=("python3-websockets (TestPythonWebsockets)")
have_node || missing+=("node (TestNodeWs, client TestWSDJS)")
have_ws || missing+=("npm ws $(ws_wanted) in test/interop/node/node_modules (TestNodeWs, client TestWSDJS)")
have_nginx || missing+=("nginx (test/e2e *ThroughNginxTLS)")
have_nats_server || missing+=("nats-server at bin/nats-server, \$WSD_NATS_SERVER or PATH (pubsub/natsbroker, cmd/wsd cluster tests)")
have_chromium || missing+=("chromium at ${WSD_CHROMIUM:-/usr/bin/chromium} and on PATH (test/browser, bench TestHTMLRendersInChromium)")
((${#missing[@]} == 0)) || loud "still missing: ${missing[*]}"

if ((${#problems[@]} == 0)); then
	say "all test dependencies present"
	exit 0
fi
printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
printf '!! install-test-deps: %d problem(s):\n' "${#problems[@]}" >&2
printf '!!   - %s\n' "${problems[@]}" >&2
if in_ci; then
	printf '!! CI=true: failing, as the tests that need them would.\n' >&2
	printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
	exit 1
fi
printf '!! The tests that need them will SKIP (under CI=true they fail).\n' >&2
printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
exit 0
