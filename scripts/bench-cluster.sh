#!/usr/bin/env bash
# Cross-node broadcast on loopback (docs/bench/cluster-broadcast.md): one
# channel, CONNS /ws subscribers, one publisher; wsbench reports deliveries/s,
# latency (per node too) and each server process's CPU per delivery.
#
#   CASE=cluster  two wsd on one nats-server, subscribers round robin over
#                 both, the publisher on A (the default; make bench-cluster)
#   CASE=nats     one wsd on nats-server: JetStream's cost without the hop
#   CASE=memory   one wsd, in-memory broker: the single-node figure
#
# Knobs: CONNS (18000), DURATION (8s), PIPELINE (8, closed loop), RATE
# (publishes/s; 0 = closed loop), OUT (wsbench --json file), PORT_BASE
# (18830: nats-server on it, wsd A and B on the next two). Everything it
# starts is stopped on exit, whatever happens; every wait is bounded and
# wsbench runs under timeout(1) with TIME_LIMIT (240 s) as well as its own
# --timeout.
set -euo pipefail

CASE=${CASE:-cluster}
CONNS=${CONNS:-18000}
DURATION=${DURATION:-8s}
PIPELINE=${PIPELINE:-8}
RATE=${RATE:-0}
OUT=${OUT:-}
PORT_BASE=${PORT_BASE:-18830}
TIME_LIMIT=${TIME_LIMIT:-240}
NATS_SERVER=${NATS_SERVER:-bin/nats-server}
WSD=${WSD:-bin/wsd}
WSBENCH=${WSBENCH:-bin/wsbench}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.60}

case "$CASE" in memory | nats | cluster) ;; *)
	echo "bench-cluster: CASE must be memory, nats or cluster" >&2
	exit 2
	;;
esac
for b in "$WSD" "$WSBENCH"; do
	[[ -x $b ]] || { echo "bench-cluster: $b missing (make bench-peers-build or go build)" >&2; exit 2; }
done
if [[ $CASE != memory && ! -x $NATS_SERVER ]]; then
	echo "bench-cluster: $NATS_SERVER missing: run scripts/install-test-deps.sh (it builds nats-server v2.15.3 into bin/)" >&2
	exit 2
fi

nats_port=$PORT_BASE
a_port=$((PORT_BASE + 1))
b_port=$((PORT_BASE + 2))
dir=$(mktemp -d "${TMPDIR:-/tmp}/wsd-bench-cluster.XXXXXX")
pids=()

# stop ends every process this script started, the last started first:
# TERM, then KILL after 5 s.
stop() {
	local p i rev=()
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do rev+=("${pids[i]}"); done
	for p in "${rev[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${rev[@]}"; do
		for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

# wait_port waits (at most 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-cluster: nothing listens on 127.0.0.1:$1 after 10 s" >&2
	return 1
}

wsd_args=(--log-level warn --rate-limit -1)
if [[ $CASE != memory ]]; then
	"$NATS_SERVER" -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
	nats_pid=$!
	pids+=($nats_pid)
	wait_port "$nats_port"
	wsd_args+=(--broker nats --nats-url "nats://127.0.0.1:$nats_port")
fi
"$WSD" --listen "127.0.0.1:$a_port" "${wsd_args[@]}" 2>"$dir/a.log" &
a_pid=$!
pids+=($a_pid)
wait_port "$a_port"
cpu=(--cpu-pid "wsd A=$a_pid")
urls="ws://127.0.0.1:$a_port/ws"
if [[ $CASE == cluster ]]; then
	"$WSD" --listen "127.0.0.1:$b_port" "${wsd_args[@]}" 2>"$dir/b.log" &
	b_pid=$!
	pids+=($b_pid)
	wait_port "$b_port"
	cpu+=(--cpu-pid "wsd B=$b_pid")
	urls+=",ws://127.0.0.1:$b_port/ws"
fi
if [[ $CASE != memory ]]; then
	cpu+=(--cpu-pid "nats-server=$nats_pid")
fi

procs=$(((CONNS + 8999) / 9000))
pace=(--pipeline "$PIPELINE")
if [[ $RATE != 0 ]]; then pace=(--rate "$RATE"); fi
json=()
if [[ -n $OUT ]]; then json=(--json "$OUT"); fi
echo "bench-cluster: CASE=$CASE CONNS=$CONNS ${pace[*]} urls $urls" >&2
# In the background, so that a TERM or INT to this script is handled at
# once (bash runs traps only between foreground commands) and stops it too.
timeout -k 5 "$TIME_LIMIT" "$WSBENCH" broadcast --mode ws --url "$urls" --publish-url "ws://127.0.0.1:$a_port/ws" --channel bench \
	--label "$CASE" --conns "$CONNS" --procs "$procs" --size 64 "${pace[@]}" --duration "$DURATION" \
	--source-ips "$SOURCE_IPS" --timeout 3m --quiet "${cpu[@]}" "${json[@]}" &
pids+=($!)
wait $!
