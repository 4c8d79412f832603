#!/usr/bin/env bash
# Broadcast rate sweep, wsd and its peers side by side
# (docs/bench/broadcast-sweep.md): for each server in SERVERS, start it,
# run `wsbench broadcast --rates` against its /broadcast (raw mode: every
# message sent is relayed to every connection) with CONNS subscribers over
# PROCS client processes, stop it. Each step offers one publish rate for
# STEP seconds on fresh connections; the sweep stops after STOP_AFTER
# steps in a row not kept up with. Per server: OUT/NAME-Nk.json (the sweep)
# and its Markdown table on stdout, with the load average before and after;
# then all of them side by side in OUT/table-Nk.md.
#
# Knobs: SERVERS (wsd gws nbio), CONNS (10000), PROCS (CONNS/10000 rounded
# up), RATES (publishes/s: list and FROM:TO:STEP ranges), STEP (5s),
# MAX_P99 (100ms), STOP_AFTER (2), SIZE (64), OUT (docs/bench/sweep),
# PORT_BASE (19420). Every process it starts is stopped on exit.
set -euo pipefail

SERVERS=${SERVERS:-wsd gws nbio}
CONNS=${CONNS:-10000}
PROCS=${PROCS:-$(((CONNS + 9999) / 10000))}
RATES=${RATES:-2:10:2,15:40:5,50}
STEP=${STEP:-5s}
MAX_P99=${MAX_P99:-100ms}
STOP_AFTER=${STOP_AFTER:-2}
SIZE=${SIZE:-64}
OUT=${OUT:-docs/bench/sweep}
PORT_BASE=${PORT_BASE:-19420}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.60}
WSBENCH=${WSBENCH:-bin/wsbench}

mkdir -p "$OUT"
pid=
stop() {
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-sweep: nothing listens on 127.0.0.1:$1 after 10 s" >&2
	return 1
}

k=$((CONNS / 1000))k
port=$PORT_BASE
for name in $SERVERS; do
	case $name in
	wsd) cmd=(bin/wsd --log-level error) ;;
	*) cmd=("bin/peers/$name") ;;
	esac
	[[ -x ${cmd[0]} ]] || { echo "bench-sweep: ${cmd[0]} missing (make bench-peers-build PEERS='gws nbio')" >&2; exit 2; }
	"${cmd[@]}" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
	pid=$!
	wait_port "$port"
	echo "== $name, $CONNS subscribers, $PROCS client procs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	"$WSBENCH" broadcast --url "ws://127.0.0.1:$port/broadcast" --label "$name" --conns "$CONNS" --procs "$PROCS" \
		--size "$SIZE" --text --rates "$RATES" --max-p99 "$MAX_P99" --stop-after "$STOP_AFTER" --duration "$STEP" \
		--source-ips "$SOURCE_IPS" --server-pid "$pid" --quiet --json "$OUT/$name-$k.json"
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	stop
	port=$((port + 1))
done
files=()
for name in $SERVERS; do files+=("$OUT/$name-$k.json"); done
"$WSBENCH" report --sweep "${files[@]}" | tee "$OUT/table-$k.md"
