#!/usr/bin/env bash
# bench/ab.sh: two chat-server builds side by side, in one run: the candidate (this work tree,
# or CANDIDATE=path) and a baseline (BASELINE=path, e.g. a release build of the previous
# commit). Each workload runs RUNS rounds, baseline and candidate alternating, every server
# pinned to SERVER_CPU and the load generator to LOADGEN_CPU, so machine noise hits both alike.
# Prints the medians, the candidate/baseline ratio, and the server's CPU by thread (read from
# /proc/PID/task/*/stat just before each server is stopped; threads.jsonl). Loopback only; every
# run is bounded.
#
#   git worktree add /tmp/base HEAD~3 && (cd /tmp/base && cargo build --release -p chat-server)
#   BASELINE=/tmp/base/target/release/chat-server RUNS=3 WORKLOADS="w1 w4" bench/ab.sh
#
# Workloads: w1 (100 clients flat out, the room's fan-out), w4 (19,000 idle named connections).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"w1 w4"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=${OUT:-target/bench/ab-$(date +%Y%m%d-%H%M%S)}
: "${BASELINE:?set BASELINE to the chat-server binary to compare against}"
[ -n "${CANDIDATE:-}" ] && CHAT_SERVER=$CANDIDATE
source "$(dirname "$0")/lib.sh"
RESULTS="$OUT/results.jsonl"
THREADS="$OUT/threads.jsonl"
: >"$RESULTS"
: >"$THREADS"
build
cp "$BASELINE" "$OUT/chat-server-baseline"
declare -A BINARY=([candidate]=$CHAT_SERVER [baseline]=$OUT/chat-server-baseline)

# one WORKLOAD WHICH ARGS...: a fresh server of build WHICH, one load run, stop.
one() {
  local workload=$1 which=$2
  shift 2
  CHAT_SERVER=${BINARY[$which]} start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000
  loadgen "$workload-$which" chat "$PORT" "$PID" "$@"
  echo "{\"label\": \"$workload-$which\", \"threads\": $(threads_cpu "$PID")}" >>"$THREADS"
  stop "$PID"
}

for workload in $WORKLOADS; do
  for run in $(seq "$RUNS"); do
    for which in baseline candidate; do
      log "$workload $which round $run/$RUNS"
      case $workload in
        w1) one w1 "$which" --clients 100 --messages 1000 --size 64 ;;
        w4) one w4 "$which" --mode idle --clients 19000 --setup-timeout 300 --settle-timeout 120 ;;
        *) echo "bench/ab.sh: unknown workload $workload" >&2; exit 1 ;;
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
def fmt(v, unit=""):
    return "-" if v is None else (f"{v:,.2f}{unit}" if v < 1000 else f"{v:,.0f}{unit}")
print("| workload | figure | baseline | candidate | candidate/baseline |")
print("|---|---|---|---|---|")
figures = {
    "w1": [("deliveries/s", lambda r: r.get("deliveries_per_s")),
           ("server CPU ns/delivery", lambda r: r["server"]["cpu_s"] * 1e9 / r["delivered"] if r.get("delivered") else None),
           ("lost", lambda r: r.get("lost"))],
    "w4": [("RSS bytes/idle connection", lambda r: (r.get("server") or {}).get("bytes_per_connection")),
           ("broadcast to all, ms", lambda r: (r.get("broadcast") or {}).get("all_ms"))],
}
for workload, rows in figures.items():
    for name, f in rows:
        b, c = median(f"{workload}-baseline", f), median(f"{workload}-candidate", f)
        if b is None and c is None:
            continue
        ratio = "-" if not b or c is None else f"{c / b:.3f}"
        print(f"| {workload} | {name} | {fmt(b)} | {fmt(c)} | {ratio} |")
print(f"\n({len(runs.get('w1-baseline', []))} w1 and {len(runs.get('w4-baseline', []))} w4 rounds per build; medians)")
print("\nServer CPU by thread over each whole run (connecting included), median seconds:")
for label in sorted(threads):
    cells = ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in sorted(threads[label].items()))
    print(f"  {label}: {cells}")
PY
log "results: $RESULTS"
