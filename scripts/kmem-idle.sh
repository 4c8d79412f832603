#!/usr/bin/env bash
# kmem-idle.sh N PROCS LABEL [extra wsbench args...]   (SCEN=echo for echo)
# Runs wsd and `wsbench SCENARIO` (default idle) inside the network namespace
# $NS (default kmem; create it with `ip netns add kmem; ip netns exec kmem
# ip link set lo up`), so /proc/net/sockstat's per-namespace counters see
# only this run. While the connections are held it sums ss's skmem of the
# server's sockets and of the clients' separately. Writes $OUT/LABEL.{json,txt,ss}.
# (OUT defaults to .kmem, which git ignores.)
# wsd's environment: WSD_ENV (e.g. "GOGC=50"); its flags: WSD_FLAGS.
# With CG=DIR (a cgroup v1 memory directory, e.g. a child of your own), wsd runs
# in DIR/kmem-srv and wsbench in DIR/kmem-cli, and the .ss file gets each
# one's memory.kmem.usage_in_bytes before and while the connections are held:
# the kernel memory charged to the server alone (the accepted sockets' TCP
# objects are not charged to it). wsbench enters the namespace with nsenter,
# which (unlike ip netns exec) keeps /sys/fs/cgroup visible, so it reports
# the server cgroup's figure itself too.
set -euo pipefail
N=$1 PROCS=$2 LABEL=$3 SCEN=${SCEN:-idle}
shift 3
NS=${NS:-kmem} PORT=${PORT:-9101} OUT=${OUT:-.kmem}
mkdir -p "$OUT"
nsx() { ip netns exec "$NS" "$@"; }
# into() runs its command in cgroup $CG/$1 (when CG is set).
into() { local g=$1; shift; if [ -n "${CG:-}" ]; then sh -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG/$g" "$@"; else "$@"; fi; }
kmem() { [ -n "${CG:-}" ] && echo "$(cat "$CG/kmem-srv/memory.kmem.usage_in_bytes") $(cat "$CG/kmem-cli/memory.kmem.usage_in_bytes") $(cat "$CG/kmem-srv/memory.usage_in_bytes")" || echo "0 0 0"; }
into kmem-srv ip netns exec "$NS" env ${WSD_ENV:-} bin/wsd --listen 127.0.0.1:$PORT ${WSD_FLAGS:-} >"$OUT/$LABEL.wsd.log" 2>&1 &
WSD=$!
for _ in $(seq 100); do nsx ss -ltnH "sport = :$PORT" | grep -q . && break; sleep 0.1; done
# The listener's owner is wsd (ip netns exec may fork, so $! need not be).
SERVERPID=$(nsx ss -ltnpH "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ "$(cat /proc/$SERVERPID/comm)" = wsd ] || { echo "no wsd on :$PORT"; kill $WSD; exit 1; }
trap 'kill $SERVERPID $WSD 2>/dev/null; wait $WSD 2>/dev/null || true' EXIT
sleep 1
K0=$(kmem)
# skmem sampler: once every connection is established, sum r/f/t/w per side (bounded: 120 s).
(
  for _ in $(seq 1200); do
    up=$(nsx ss -tnH state established "sport = :$PORT" | wc -l)
    if [ "$up" -ge "$N" ]; then sleep 4; break; fi
    sleep 0.1
  done
  side() { nsx ss -tmnH state established "$1" | tr -s ' ' '\n' | grep -o 'skmem:([^)]*)' |
    awk -F'[(),]' '{for(i=2;i<=NF;i++){k=$i; gsub(/[0-9]+/,"",k); v=$i; gsub(/[^0-9]/,"",v); s[k]+=v}; n++} END{printf "sockets %d", n; for(k in s) printf " %s=%.0f", k, s[k]; print ""}'; }
  echo "server: $(side "sport = :$PORT")"
  echo "client: $(side "dport = :$PORT")"
  nsx cat /proc/net/sockstat | grep TCP
  read -r s0 c0 u0 <<<"$K0"; read -r s1 c1 u1 <<<"$(kmem)"
  echo "cgroup kmem: server $s0 -> $s1 = $(( (s1-s0)/N )) B/conn; client (incl. its process) -> $c1 = $(( c1/N )) B/conn; server memory.usage $u0 -> $u1 = $(( (u1-u0)/N )) B/conn"
) >"$OUT/$LABEL.ss" &
SS=$!
into kmem-cli nsenter --net=/var/run/netns/"$NS" bin/wsbench "$SCEN" --url ws://127.0.0.1:$PORT/echo --conns "$N" --procs "$PROCS" \
  --source-ips 127.0.0.2-127.0.0.60 --server-pid "$SERVERPID" --json "$OUT/$LABEL.json" "$@" >"$OUT/$LABEL.txt" 2>&1 || { cat "$OUT/$LABEL.txt"; exit 1; }
wait $SS || true
cat "$OUT/$LABEL.txt" "$OUT/$LABEL.ss"
