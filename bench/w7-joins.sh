#!/usr/bin/env bash
# bench/w7-joins.sh: W7's joins, two chat-server builds and Redis in one run.
#
# W7's shape (bench/run.sh): N named clients, each in the lobby and in room r(i mod R), here
# only until everyone has joined and one line each has been delivered (--rate 0.1 --duration 10).
# Ours: the name and `/join #rK` in one write (the load generator's default; JOIN_IN_TURN=1
# waits for the welcome first, as before); Redis: one SUBSCRIBE to `lobby` and `rK`. Each round
# runs the baseline, the candidate and Redis in turn, each a fresh server pinned to SERVER_CPU
# (the load generator to LOADGEN_CPU). For each run: the join time, the mean of each phase of a
# join (connect, name, rooms), the CPU the server and the load generator spent while the clients
# joined, and the server's CPU by thread (from /proc/PID/task/*/stat) over the whole run. Prints
# medians. Loopback only; every run is bounded (--setup-timeout, --drain-timeout).
#
#   BASELINE=/tmp/base/target/release/chat-server RUNS=3 bench/w7-joins.sh
#
# Environment: BASELINE (required), CANDIDATE=path (default: build this work tree), LOADGEN=path,
# RUNS=3, CLIENTS=10000, ROOMS=1000, JOIN_IN_TURN=, SERVER_CPU=0 LOADGEN_CPU=1, OUT=dir.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-10000}
ROOMS=${ROOMS:-1000}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=${OUT:-target/bench/w7-joins-$(date +%Y%m%d-%H%M%S)}
: "${BASELINE:?set BASELINE to the chat-server binary to compare against}"
[ -n "${CANDIDATE:-}" ] && CHAT_SERVER=$CANDIDATE
source "$(dirname "$0")/lib.sh"
# 10,000 client sockets in the load generator, 10,000 in each server.
ulimit -n 20000
need
build
cp "$BASELINE" "$OUT/chat-server-baseline"
declare -A BINARY=([candidate]=$CHAT_SERVER [baseline]=$OUT/chat-server-baseline)
RESULTS="$OUT/results.jsonl"
THREADS="$OUT/threads.jsonl"
: >"$RESULTS"
: >"$THREADS"
extra=()
[ -n "${JOIN_IN_TURN:-}" ] && extra=(--join-in-turn)
w7=(--clients "$CLIENTS" --rooms "$ROOMS" --rate 0.1 --duration 10 --size 64 --publishers 100
  --spread-sources --setup-timeout 900 --settle-timeout 60 --drain-timeout 20 "${extra[@]}")

for run in $(seq "$RUNS"); do
  for which in baseline candidate redis; do
    log "w7 joins, $which, round $run/$RUNS"
    if [ "$which" = redis ]; then
      start_redis "$SERVER_CPU"
      pid=$REDIS_PID port=$REDIS_PORT protocol=redis
    else
      CHAT_DB=none CHAT_SERVER=${BINARY[$which]} start_chat "$SERVER_CPU" --rate 0 --no-color \
        --max-clients 30000 --max-rooms $((ROOMS + 1000))
      pid=$PID port=$PORT protocol=chat
    fi
    loadgen "$which" "$protocol" "$port" "$pid" "${w7[@]}"
    echo "{\"label\": \"$which\", \"threads\": $(threads_cpu "$pid")}" >>"$THREADS"
    stop "$pid"
  done
done

python3 - "$RESULTS" "$THREADS" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs, threads = defaultdict(list), defaultdict(lambda: defaultdict(list))
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        runs[r["label"]].append(r)
for line in open(sys.argv[2], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        for name, seconds in r["threads"].items():
            threads[r["label"]][name].append(seconds)
def median(label, f):
    values = [v for v in (f(r) for r in runs[label]) if v is not None]
    return statistics.median(values) if values else None
labels = [l for l in ("baseline", "candidate", "redis") if runs[l]]
rows = [
    ("join time, s", lambda r: r["setup_s"]),
    ("mean connect, ms", lambda r: r["join"]["connect_ms"]),
    ("mean name accepted, ms", lambda r: r["join"]["named_ms"]),
    ("mean rooms joined after that, ms", lambda r: r["join"]["rooms_ms"]),
    ("server CPU while joining, s", lambda r: r["join"]["server_cpu_s"]),
    ("load generator CPU while joining, s", lambda r: r["join"]["loadgen_cpu_s"]),
    ("lost", lambda r: r["lost"]),
]
print("| W7 joins (median) | " + " | ".join(labels) + " |")
print("|---" * (len(labels) + 1) + "|")
for name, f in rows:
    cells = [median(l, f) for l in labels]
    print(f"| {name} | " + " | ".join("-" if c is None else f"{c:,.3f}" for c in cells) + " |")
print("\nJoin times of each round: " + "; ".join(
    f"{l} " + ", ".join(f"{r['setup_s']:.2f}" for r in runs[l]) for l in labels))
print("\nServer CPU by thread over each whole run, median seconds:")
for label in labels:
    cells = ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in sorted(threads[label].items()))
    print(f"  {label}: {cells}")
PY
log "results: $RESULTS"
