#!/usr/bin/env bash
# bench/instructions.sh: the instructions two chat-server builds execute for the same W1, counted
# by valgrind's callgrind, which the machine's load does not change (timings on a shared machine
# do). Settles an A/B whose timed runs disagree with each other.
#
#   BASELINE=/tmp/base/target/release/chat-server ROUNDS=3 bench/instructions.sh
#
# Each round starts a fresh server of each build under callgrind (baseline first, then the
# candidate: this work tree's release build, or CANDIDATE=path), runs W1 (CLIENTS clients, each
# sending MESSAGES lines of 64 B) once to warm up, zeroes the counters, runs it again and dumps:
# the instructions of that second run, per delivery. Servers get their own database file in OUT.
# Loopback only; every run bounded (the load generator's timeouts).
#
# Environment (all optional): ROUNDS=3, CLIENTS=30, MESSAGES=300, CANDIDATE, LOADGEN, OUT.
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-30}
MESSAGES=${MESSAGES:-300}
source "$(dirname "$0")/lib.sh"
: "${BASELINE:?set BASELINE to the chat-server binary to compare against}"
[ -n "${CANDIDATE:-}" ] && CHAT_SERVER=$CANDIDATE
need valgrind:valgrind
build
cp "$BASELINE" "$OUT/chat-server-baseline"
declare -A BINARY=([candidate]=$CHAT_SERVER [baseline]=$OUT/chat-server-baseline)
RESULTS="$OUT/instructions.jsonl"
: >"$RESULTS"

# w1 PORT PID LABEL: one W1 run through the server on PORT; its result line on stdout.
w1() {
  "$LOADGEN" --protocol chat --addr "127.0.0.1:$1" --server-pid "$2" --label "$3" --quiet \
    --clients "$CLIENTS" --messages "$MESSAGES" --size 64 --setup-timeout 600 \
    --settle-timeout 600 2>>"$OUT/loadgen.log" | tail -n 1
}

# one WHICH ROUND: a server of build WHICH under callgrind; the counted run's figures.
one() {
  local which=$1 round=$2 port pid counted
  port=$(free_port)
  CHAT_DB=$OUT/chat-$port.db RUST_LOG=warn valgrind --tool=callgrind \
    --callgrind-out-file="$OUT/callgrind-$which-$round.%p" "${BINARY[$which]}" \
    --listen "127.0.0.1:$port" --rate 0 --no-color </dev/null >"$OUT/chat-$port.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_for_port "$port" 600
  w1 "$port" "$pid" "warm-$which" >/dev/null
  callgrind_control --zero "$pid" >/dev/null
  counted=$(w1 "$port" "$pid" "w1-$which")
  callgrind_control --dump "$pid" >/dev/null
  stop "$pid"
  # The dump after the counted run is the process's first numbered part (.1).
  python3 - "$OUT/callgrind-$which-$round.$pid.1" "$which" "$counted" >>"$RESULTS" <<'PY'
import json, sys
path, which, run = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
summary = next(int(l.split()[1]) for l in open(path) if l.startswith("summary:"))
print(json.dumps({"build": which, "instructions": summary, "delivered": run["delivered"],
                  "lost": run["lost"], "per_delivery": summary / max(run["delivered"], 1)}))
PY
  tail -n 1 "$RESULTS" >&2
}

for round in $(seq "$ROUNDS"); do
  for which in baseline candidate; do
    log "$which round $round/$ROUNDS"
    one "$which" "$round"
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
median = {b: statistics.median(r["instructions"] for r in runs if r["build"] == b)
          for b in ("baseline", "candidate")}
per = {b: statistics.median(r["per_delivery"] for r in runs if r["build"] == b)
       for b in ("baseline", "candidate")}
print("| figure (median) | baseline | candidate | candidate/baseline |")
print("|---|---|---|---|")
print(f"| instructions, counted run | {median['baseline']:,.0f} | {median['candidate']:,.0f} "
      f"| {median['candidate'] / median['baseline']:.3f} |")
print(f"| instructions per delivery | {per['baseline']:,.0f} | {per['candidate']:,.0f} "
      f"| {per['candidate'] / per['baseline']:.3f} |")
print(f"| lost | {sum(r['lost'] for r in runs if r['build'] == 'baseline')} "
      f"| {sum(r['lost'] for r in runs if r['build'] == 'candidate')} | - |")
PY
log "results: $RESULTS"
