#!/usr/bin/env bash
# bench/joins.sh: does the time of a /join grow with a user's rooms, or with a room's members?
#
# Two checks on our chat server (the load generator's --mode joins; every join waits for the
# server's current-room notice, one join after another):
#   rooms: one connection joins N rooms in turn (N = 500 and 1,000; the server started with
#          --max-rooms and --rooms-per-user above N);
#   users: N connections, connected and named first, join one room in turn (N = 5,000, 10,000).
# Linear growth means twice the joins take twice the time (ratio 2.0) and the second half of a
# run takes as long as the first. A fresh server per run, pinned to SERVER_CPU, the load generator
# to LOADGEN_CPU; loopback only; every run is bounded (--setup-timeout). Prints a table of medians.
#
# Environment (all optional): RUNS=3, SERVER_CPU=0 LOADGEN_CPU=1, CHAT_SERVER=path, LOADGEN=path,
# OUT=dir (default target/bench/<date>-joins), ROOM_SIZES="500 1000", USER_SIZES="5000 10000".
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
ROOM_SIZES=${ROOM_SIZES:-"500 1000"}
USER_SIZES=${USER_SIZES:-"5000 10000"}
source "$(dirname "$0")/lib.sh"
# 10,000 connections in the load generator and in the server.
ulimit -n 20000
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

need
build

# one LABEL CLIENTS ROOMS [SERVER FLAGS...]: a fresh server, one timed run of joins, stop.
one() {
  local label=$1 clients=$2 rooms=$3
  shift 3
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 "$@"
  loadgen "$label" chat "$PORT" "$PID" --mode joins --clients "$clients" --rooms "$rooms" \
    --spread-sources --setup-timeout 300
  stop "$PID"
}

for run in $(seq "$RUNS"); do
  for n in $ROOM_SIZES; do
    log "rooms $n, run $run/$RUNS"
    one "rooms-$n" 1 "$n" --max-rooms $((n + 100)) --rooms-per-user $((n + 100))
  done
  for n in $USER_SIZES; do
    log "users $n, run $run/$RUNS"
    one "users-$n" "$n" 1
  done
done

python3 - "$RESULTS" "$ROOM_SIZES" "$USER_SIZES" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        runs[r["label"]].append(r)
def med(label, key):
    values = [r[key] for r in runs.get(label, []) if r.get(key) is not None]
    return statistics.median(values) if values else None
print("| check | N | joins take (median) | per join | 2nd half / 1st half | server CPU per join | runs |")
print("|---|---|---|---|---|---|---|")
for kind, sizes in (("rooms", sys.argv[2].split()), ("users", sys.argv[3].split())):
    for n in sizes:
        label = f"{kind}-{n}"
        if label not in runs:
            continue
        each = ", ".join(f"{r['join_s']:.3f}" for r in runs[label])
        cpu = med(label, "server_cpu_us_per_join")
        print(f"| {'one user, N rooms' if kind == 'rooms' else 'N users, one room'} | {int(n):,} "
              f"| {med(label, 'join_s'):.3f} s ({each}) | {med(label, 'per_join_us'):.0f} us "
              f"| {med(label, 'second_over_first'):.2f} | {'-' if cpu is None else f'{cpu:.0f} us'} "
              f"| {len(runs[label])} |")
print()
for kind, sizes in (("rooms", sys.argv[2].split()), ("users", sys.argv[3].split())):
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        a, b = med(f"{kind}-{small}", "join_s"), med(f"{kind}-{big}", "join_s")
        if a and b:
            print(f"- {kind}: N = {int(big):,} / N = {int(small):,}: time x{b / a:.2f} "
                  f"for x{int(big) / int(small):.2f} the joins (linear: the same)")
PY
log "results: $RESULTS"
