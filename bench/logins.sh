#!/usr/bin/env bash
# bench/logins.sh: what password hashing costs, and whether logins stall the room.
#
#   1. One argon2id hash and one verification with the daemon's own functions
#      (examples/logins.rs --hashes HASHES), on an idle machine: p50 and max.
#   2. W2 (100 clients in #lobby, 10 senders x 100 lines/s for 20 s, 64 B) on a fresh daemon,
#      alone and while another client logs in to a registered name LOGINS times one after
#      another (connect, name, password, welcome, /quit; started before W2 and still going
#      when it ends), the two alternating round by round (RUNS rounds). Reports W2's p50/p99
#      latency for each and their ratio, and the logins' own times. Every login is a join and
#      a leave in #lobby, where W2 runs: its 100 clients get those notices too.
#
# The daemon is pinned to SERVER_CPU, with its blocking pool, so every hash competes with the
# room's fan-out for that one core: the harshest case. The load generator and the login client
# run on LOADGEN_CPU. Loopback only; every run is bounded. Prints a markdown table.
#
# Environment (all optional): RUNS=3, LOGINS=1000, HASHES=50, SERVER_CPU=0, LOADGEN_CPU=1,
# CHAT_SERVER, LOADGEN, OUT.
RUNS=${RUNS:-3}
LOGINS=${LOGINS:-1000}
HASHES=${HASHES:-50}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
source "$(dirname "$0")/lib.sh"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

need
build
log "building the login client (release)"
cargo build --release --example logins -p chat
cp target/release/examples/logins "$OUT/"

record() { echo "$1" >>"$RESULTS"; echo "$1" >&2; }

# The room is never quiet while logins come and go (each is a join and a leave notice), so
# both arms wait at most 3 s for their own joins to settle instead of the usual quiet 1.5 s.
W2=(--clients 100 --senders 10 --rate 100 --duration 20 --size 64 --settle-timeout 3)

log "timing $HASHES hashes"
record "$(taskset -c "$SERVER_CPU" "$OUT/logins" --hashes "$HASHES")"

# w2 LABEL [with-logins]: a fresh daemon, one W2 run, with logins alongside if asked.
w2() {
  local label=$1 with=${2:-}
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000
  local logins_pid=""
  if [ -n "$with" ]; then
    taskset -c "$LOADGEN_CPU" "$OUT/logins" --addr "127.0.0.1:$PORT" --count "$LOGINS" \
      >"$OUT/logins-$PORT.json" 2>>"$OUT/logins.log" &
    logins_pid=$!
    PIDS+=("$logins_pid")
  fi
  loadgen "$label" chat "$PORT" "$PID" "${W2[@]}"
  if [ -n "$logins_pid" ]; then
    local w2_ended
    w2_ended=$(date +%s.%N)
    if ! wait "$logins_pid"; then
      log "the login client failed (see $OUT/logins.log)"
      exit 1
    fi
    local logins
    logins=$(cat "$OUT/logins-$PORT.json")
    record "${logins%\}},\"label\":\"$label\",\"w2_ended_s\":$w2_ended,\"logins_ended_s\":$(date +%s.%N)}"
  fi
  stop "$PID"
}

for run in $(seq "$RUNS"); do
  log "round $run/$RUNS"
  if [ $((run % 2)) -eq 1 ]; then
    w2 w2-alone
    w2 w2-logins with-logins
  else
    w2 w2-logins with-logins
    w2 w2-alone
  fi
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
hashes = next(r for r in rows if r.get("mode") == "hashes")
def runs(label):
    return [r for r in rows if r.get("label") == label and r.get("protocol") == "chat"]
def med(rs, path):
    values = []
    for r in rs:
        for key in path.split("."):
            r = r.get(key) if isinstance(r, dict) else None
        if isinstance(r, (int, float)):
            values.append(r)
    return statistics.median(values) if values else float("nan")
alone, busy = runs("w2-alone"), runs("w2-logins")
logins = [r for r in rows if r.get("mode") == "logins"]
print(f"one hash: p50 {hashes['hash_ms_p50']:.1f} ms (max {hashes['hash_ms_max']:.1f}); "
      f"one verification: p50 {hashes['verify_ms_p50']:.1f} ms (max {hashes['verify_ms_max']:.1f}); "
      f"{hashes['count']} each\n")
print("| W2 figure (median of %d) | alone | with logins | with / alone |" % len(alone))
print("|---|---|---|---|")
for name, path, scale, unit in (("latency p50", "latency_us.p50", 1e3, " ms"),
                                ("latency p99", "latency_us.p99", 1e3, " ms"),
                                ("latency p99.9", "latency_us.p999", 1e3, " ms"),
                                ("lost", "lost", 1, "")):
    a, b = med(alone, path) / scale, med(busy, path) / scale
    ratio = f"{b / a:.2f}" if a else "–"
    print(f"| {name} | {a:.2f}{unit} | {b:.2f}{unit} | {ratio} |")
if logins:
    print(f"\nlogins: {logins[0]['count']} in a row per run, login p50 "
          f"{statistics.median(r['login_ms_p50'] for r in logins):.1f} ms, p99 "
          f"{statistics.median(r['login_ms_p99'] for r in logins):.1f} ms, total "
          f"{statistics.median(r['total_s'] for r in logins):.1f} s (median of {len(logins)} runs; "
          "W2 ran inside every one)")
EOF
