#!/usr/bin/env bash
# bench/redis-kill.sh: what happens when the backplane's Redis dies during a two-node W1.
#
# redis-server and two chat-servers sharing one room through it (pinned to SERVER_CPU); three
# observers (bench/observer.py: a1 and a2 on daemon A, b1 on daemon B) stay connected throughout.
# The load generator (pinned to LOADGEN_CPU) spreads 100 clients over both daemons, all sending
# 1,000 messages of 64 bytes flat out, and SIGKILLs redis-server KILL_AFTER seconds after the
# senders start. It counts local and cross-node deliveries (before and after the kill) and the
# daemons' notices. With Redis still down, a1 sends one line (a2 must get it, b1 cannot). Then
# redis-server is started again on the same port and the observers wait for "whole again", and
# a final line each way must cross between the daemons.
#
#   bench/redis-kill.sh                  # RUNS=1 by default
#   RUNS=3 KILL_AFTER=0.3 bench/redis-kill.sh
#
# Environment: RUNS=1 KILL_AFTER=0.3 OUTAGE=0 (extra seconds Redis stays down) CLIENTS=100 MESSAGES=1000 SERVER_CPU=0 LOADGEN_CPU=1
# CHAT_SERVER LOADGEN OUT. Results: $OUT/results.jsonl (load generator), $OUT/observer-N.json.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-1}
KILL_AFTER=${KILL_AFTER:-0.3}
OUTAGE=${OUTAGE:-0}
CLIENTS=${CLIENTS:-100}
MESSAGES=${MESSAGES:-1000}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
export CHAT_LOG="warn,chat_server::backplane=info"

need
build

one_run() {
  local run=$1 dir=$OUT/run-$1
  mkdir -p "$dir"
  start_redis "$SERVER_CPU"
  local redis_port=$REDIS_PORT redis_pid=$REDIS_PID
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 \
    --backplane "redis://127.0.0.1:$redis_port/0"
  local port_a=$PORT pid_a=$PID
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 \
    --backplane "redis://127.0.0.1:$redis_port/0"
  local port_b=$PORT pid_b=$PID
  wait_for_backplane "$OUT/chat-$port_a.log"
  wait_for_backplane "$OUT/chat-$port_b.log"
  sleep 1.5

  python3 bench/observer.py --dir "$dir" --timeout 240 --prefix "obs$run" \
    --client "a1=127.0.0.1:$port_a" --client "a2=127.0.0.1:$port_a" \
    --client "b1=127.0.0.1:$port_b" >"$dir/observer.json" 2>"$dir/observer.log" &
  local observer=$!
  PIDS+=("$observer")
  local tries=200
  while [ ! -e "$dir/observer-ready" ]; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || { log "observer never got ready"; cat "$dir/observer.log" >&2; exit 1; }
    sleep 0.1
  done

  log "run $run: W1 over 127.0.0.1:$port_a and :$port_b; SIGKILL to redis-server $redis_pid after ${KILL_AFTER}s"
  set +e
  taskset -c "$LOADGEN_CPU" "$LOADGEN" --addr "127.0.0.1:$port_a" --addr "127.0.0.1:$port_b" \
    --server-pid "$pid_a" --server-pid "$pid_b" --clients "$CLIENTS" --messages "$MESSAGES" \
    --size 64 --drain-timeout 8 --label redis-kill --quiet \
    --kill-pid "$redis_pid" --kill-after "$KILL_AFTER" \
    --watch "The room is degraded" --watch "The room is whole again" \
    >>"$RESULTS" 2>>"$dir/loadgen.log"
  set -e
  wait "$redis_pid" 2>/dev/null || true
  tail -n 8 "$dir/loadgen.log" >&2

  # Redis is still down: one line from a1 (a2 is on the same daemon, b1 is not).
  touch "$dir/outage"
  tries=100
  while [ ! -e "$dir/outage-checked" ]; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || { log "observer never checked the outage"; break; }
    sleep 0.1
  done
  # Redis stays down OUTAGE seconds more (the daemons retry with a backoff doubling to 5 s, so
  # when "whole again" comes depends on where the restart falls between two retries).
  sleep "$OUTAGE"
  log "run $run: starting redis-server again on port $redis_port"
  mono_ns >"$dir/redis-restarted"
  start_redis "$SERVER_CPU" "$redis_port"
  local tries=600
  while kill -0 "$observer" 2>/dev/null; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || { log "observer still running; stopping it"; kill "$observer"; break; }
    sleep 0.2
  done
  wait "$observer" 2>/dev/null || true
  cp "$dir/observer.json" "$OUT/observer-$run.json"
  grep -h "backplane" "$OUT/chat-$port_a.log" "$OUT/chat-$port_b.log" >"$dir/backplane-log.txt" || true
  stop "$pid_a"
  stop "$pid_b"
  stop "$REDIS_PID"
  sleep 1
}

{
  echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
  echo "redis: $(redis-server --version | head -1)"
  echo "pinning: daemons and redis-server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU"
} >"$OUT/versions.txt"
for run in $(seq "$RUNS"); do
  one_run "$run"
done
python3 bench/redis_kill_table.py "$OUT" | tee "$OUT/table.md"
