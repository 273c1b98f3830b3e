#!/usr/bin/env bash
# bench/bans.sh: do bans in force slow arrivals or the room? One chat-server build, each round
# run twice, alternating: a server with no bans and one with BANS bans (half server-wide name
# bans, half address bans on IPv4 and IPv6 ranges of every prefix length, none covering
# loopback), set through the control socket before the load starts. Workloads: w3 (1,000
# clients connect, are named and join: setup_s, then 10 senders), w1 (100 clients flat out).
# Every server is pinned to SERVER_CPU and the load generator to LOADGEN_CPU; loopback only;
# every run is bounded. Prints the medians, the with/without ratio and the server's CPU by thread.
#
#   RUNS=5 BANS=10000 bench/bans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BANS=${BANS:-10000}
WORKLOADS=${WORKLOADS:-"w3 w1"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=${OUT:-target/bench/bans-$(date +%Y%m%d-%H%M%S)}
source "$(dirname "$0")/lib.sh"
RESULTS="$OUT/results.jsonl"
THREADS="$OUT/threads.jsonl"
: >"$RESULTS"
: >"$THREADS"
need
build

# The ban commands, one per line, as an operator would type them on the control socket.
python3 - "$BANS" >"$OUT/bans.txt" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n // 2):
    print(f"/ban spammer{i} 7d flooding")
for i in range(n - n // 2):
    if i % 2:
        prefix = 16 + i % 17  # /16 to /32
        print(f"/ban 10.{(i >> 8) & 255}.{i & 255}.0/{prefix} 7d abuse")
    else:
        prefix = 32 + i % 97  # /32 to /128
        print(f"/ban 2001:db8:{i & 0xffff:x}::/{prefix} 7d abuse")
PY

# set_bans SOCKET: sends every ban and waits for each answer (ended by an empty line).
set_bans() {
  timeout 300 python3 - "$1" "$OUT/bans.txt" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
reader = s.makefile("r", encoding="utf-8")
refused = 0
for line in lines:
    s.sendall((line + "\n").encode())
    answer = []
    while (got := reader.readline()) not in ("\n", ""):
        answer.append(got.strip())
    if not any("bann" in a.lower() for a in answer):
        refused += 1
        if refused <= 3:
            print(f"{line!r}: {answer}", file=sys.stderr)
print(f"{len(lines) - refused} bans set, {refused} refused", file=sys.stderr)
sys.exit(1 if refused else 0)
PY
}

# one WORKLOAD WHICH ARGS...: a fresh server, bans set when WHICH is "bans", one load run, stop.
one() {
  local workload=$1 which=$2
  shift 2
  local control
  control=$OUT/control-$which-$RANDOM.sock
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 --control "$control"
  [ "$which" = bans ] && set_bans "$control"
  loadgen "$workload-$which" chat "$PORT" "$PID" "$@"
  echo "{\"label\": \"$workload-$which\", \"threads\": $(threads_cpu "$PID")}" >>"$THREADS"
  stop "$PID"
}

for workload in $WORKLOADS; do
  for run in $(seq "$RUNS"); do
    order="none bans"
    [ $((run % 2)) -eq 0 ] && order="bans none"
    for which in $order; do
      log "$workload $which round $run/$RUNS"
      case $workload in
        w1) one w1 "$which" --clients 100 --messages 1000 --size 64 ;;
        w3) one w3 "$which" --clients 1000 --senders 10 --messages 200 --size 64 --setup-timeout 300 ;;
        *) echo "bench/bans.sh: unknown workload $workload" >&2; exit 1 ;;
      esac
    done
  done
done

python3 - "$RESULTS" "$THREADS" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        runs[r["label"]].append(r)
threads = defaultdict(lambda: defaultdict(list))
for line in open(sys.argv[2], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        for name, seconds in r["threads"].items():
            threads[r["label"]][name].append(seconds)
def median(label, f):
    values = [f(r) for r in runs.get(label, []) if f(r) is not None]
    return statistics.median(values) if values else None
def fmt(v):
    return "-" if v is None else (f"{v:,.3f}" if v < 1000 else f"{v:,.0f}")
figures = {
    "w3": [("1,000 joins, s (setup_s)", lambda r: r.get("setup_s")),
           ("mean join, ms", lambda r: r.get("join_ms")),
           ("server CPU s while joining", lambda r: (r.get("join") or {}).get("server_cpu_s")),
           ("lost", lambda r: r.get("lost"))],
    "w1": [("deliveries/s", lambda r: r.get("deliveries_per_s")),
           ("server CPU ns/delivery", lambda r: r["server"]["cpu_s"] * 1e9 / r["delivered"] if r.get("delivered") else None),
           ("lost", lambda r: r.get("lost"))],
}
print("| workload | figure | no bans | with bans | with/without |")
print("|---|---|---|---|---|")
for workload, rows in figures.items():
    for name, f in rows:
        a, b = median(f"{workload}-none", f), median(f"{workload}-bans", f)
        ratio = f"{b / a:.3f}" if a and b is not None else "-"
        print(f"| {workload} | {name} | {fmt(a)} | {fmt(b)} | {ratio} |")
print()
print("Server CPU seconds by thread (median):")
for label in sorted(threads):
    print(f"  {label}: " + ", ".join(f"{n}={statistics.median(v):.2f}" for n, v in sorted(threads[label].items())))
PY
