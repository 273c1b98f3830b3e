#!/usr/bin/env bash
# bench/nodes.sh: W1 across two daemons sharing one room through Redis, against W1 on one daemon,
# in the same run. Three set-ups take turns run by run, each with fresh processes:
#
#   1 node         one chat-server, no backplane: 100 clients                       (W1 as in run.sh)
#   1 node + Redis one chat-server with --backplane: 100 clients (the cost of publishing to Redis)
#   2 nodes        two chat-servers with --backplane to one redis-server: 50 clients on each
#
# Every client sends 1,000 messages of 64 bytes flat out; every other client must get each one
# (99,000 deliveries per sender); with two nodes, 50 of those 99 are cross-node. Daemons run as
# `chat-server --rate 0 --no-color --max-clients 30000`; the daemons and redis-server are pinned to
# SERVER_CPU (default 0), the load generator to LOADGEN_CPU (default 1). CPU is counted until the
# daemons and Redis go idle again after the last delivery (`loadgen --cpu-tail`): a backplane
# daemon is still reading its own messages back from Redis when the clients have all they expect.
#
#   bench/nodes.sh                   # 3 runs of each; prints a table of medians
#   RUNS=5 bench/nodes.sh
#
# Environment: RUNS=3 CLIENTS=100 MESSAGES=1000 SERVER_CPU=0 LOADGEN_CPU=1 CHAT_SERVER LOADGEN OUT
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-100}
MESSAGES=${MESSAGES:-1000}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
CHAT_ARGS=(--rate 0 --no-color --max-clients 30000)
export CHAT_LOG="warn,chat_server::backplane=info"

need
build

# run_variant LABEL NODES BACKPLANE(0|1)
run_variant() {
  local label=$1 nodes=$2 backplane=$3
  local addrs=() pids=() extra=() k
  if [ "$backplane" = 1 ]; then
    start_redis "$SERVER_CPU"
    extra=(--backplane-pid "$REDIS_PID")
  fi
  for k in $(seq "$nodes"); do
    if [ "$backplane" = 1 ]; then
      start_chat "$SERVER_CPU" "${CHAT_ARGS[@]}" --backplane "redis://127.0.0.1:$REDIS_PORT/0"
      wait_for_backplane "$OUT/chat-$PORT.log"
    else
      start_chat "$SERVER_CPU" "${CHAT_ARGS[@]}"
    fi
    addrs+=(--addr "127.0.0.1:$PORT")
    pids+=(--server-pid "$PID")
  done
  # Heartbeats and rosters exchanged: every node knows the others before clients join.
  [ "$backplane" = 1 ] && sleep 1.5
  taskset -c "$LOADGEN_CPU" "$LOADGEN" "${addrs[@]}" "${pids[@]}" "${extra[@]}" \
    --clients "$CLIENTS" --messages "$MESSAGES" --size 64 --label "$label" --quiet --cpu-tail 30 \
    >>"$RESULTS" 2>>"$OUT/loadgen.log" || {
    log "$label: load generator failed (see $OUT/loadgen.log)"
    tail -3 "$OUT/loadgen.log" >&2
  }
  python3 bench/nodes_table.py --last "$RESULTS" >&2
  # Fresh processes for the next run: stop the daemons (and Redis) this one started.
  local p
  for p in "${pids[@]}"; do
    [ "$p" = --server-pid ] || stop "$p"
  done
  [ "$backplane" = 1 ] && stop "$REDIS_PID"
  sleep 1
}

{
  echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
  echo "chat-server: $("$CHAT_SERVER" --version 2>/dev/null || echo '?') ($CHAT_SERVER)"
  echo "redis: $(redis-server --version | head -1)"
  echo "pinning: daemons and redis-server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU"
} >"$OUT/versions.txt"

for run in $(seq "$RUNS"); do
  log "round $run/$RUNS"
  # Rotate the order so that no set-up always runs first (or last) in a round.
  case $((run % 3)) in
    1) order="single single-bp two" ;;
    2) order="single-bp two single" ;;
    0) order="two single single-bp" ;;
  esac
  for v in $order; do
    case $v in
      single) run_variant "w1-1node" 1 0 ;;
      single-bp) run_variant "w1-1node-redis" 1 1 ;;
      two) run_variant "w1-2nodes" 2 1 ;;
    esac
  done
done

cat "$OUT/versions.txt"
python3 bench/nodes_table.py "$RESULTS" | tee "$OUT/table.md"
log "results: $RESULTS"
