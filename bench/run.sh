#!/usr/bin/env bash
# bench/run.sh: runs the benchmark workloads W1-W5 (and, when asked for, W7) against our chat
# server and, in the same run, against Redis pub/sub and ngircd, then prints a markdown table of
# medians (see BENCHMARKS.md).
#
# W7 (not in the default list; ~15 minutes a round): 10,000 named clients in 1,000 rooms of 10,
# each also in a lobby where nobody speaks, every client sending one 64-byte line every 10 s for
# 60 s (the load generator's --rooms 1000 --rate 0.1 --duration 60). Ours runs with
# --max-rooms 2000 (1,000 rooms and the lobby exceed the default 1,000); Redis uses one channel
# per room and the senders share 100 PUBLISH connections; ngircd one channel per room. Every
# process stays under 20,000 descriptors: the load generator holds 10,000 client sockets (and
# 100 publishers), each server 10,000.
#
# It installs the peers from Debian packages when missing (as root), builds the release binaries,
# starts every server on a free loopback port pinned to one CPU and the load generator pinned to
# another, runs each workload RUNS times per server (servers interleaved run by run, so noise hits
# all of them alike), and stops every server it started, by PID, on the way out. All traffic stays
# on 127.0.0.0/8; every run is bounded in messages and time.
#
# Environment (all optional):
#   RUNS=3                  runs per workload and server (the table shows medians)
#   WORKLOADS="w1 w2 w3 w4 w5"   add w7 for many rooms (RUNS=1 WORKLOADS=w7 bench/run.sh)
#   SERVER_CPU=0 LOADGEN_CPU=1
#   CHAT_SERVER=path        use this chat-server binary instead of building one
#   OUT=dir                 where results go (default target/bench/<date>)
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"w1 w2 w3 w4 w5"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
# Logging, cleanup by PID, build, free ports, start_chat, start_redis, stop.
source "$(dirname "$0")/lib.sh"
# W7's 10,000 connections in one process (and ngircd's and Redis's), with room to spare.
ulimit -n 20000
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# start_ours / start_peer_redis / start_ngircd (bench/lib.sh) set PORT and PID, pinned to
# SERVER_CPU. A workload adds flags for our server in ours_args.
ours_args=()
start_ours() {
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 "${ours_args[@]}"
}

start_peer_redis() {
  start_redis "$SERVER_CPU"
  PORT=$REDIS_PORT
  PID=$REDIS_PID
}

# compare LABEL ARGS...: start the three servers, run RUNS rounds of chat, redis, irc.
compare() {
  local label=$1
  shift
  start_ours
  local chat_port=$PORT chat_pid=$PID
  start_peer_redis
  local redis_port=$PORT redis_pid=$PID
  start_ngircd "$SERVER_CPU"
  local irc_port=$PORT irc_pid=$PID
  for run in $(seq "$RUNS"); do
    log "$label round $run/$RUNS"
    loadgen "$label" chat "$chat_port" "$chat_pid" "$@"
    loadgen "$label" redis "$redis_port" "$redis_pid" "$@"
    loadgen "$label" irc "$irc_port" "$irc_pid" "$@"
  done
  stop "$chat_pid"
  stop "$redis_pid"
  stop "$irc_pid"
}

w1() { compare w1 --clients 100 --messages 1000 --size 64; }
w2() { compare w2 --clients 100 --senders 10 --rate 100 --duration 20 --size 64; }
w3() { compare w3 --clients 1000 --senders 10 --messages 200 --size 64 --setup-timeout 300; }
w5() { compare w5 --clients 100 --messages 1000 --size 64 --slow-reader; }
w7() {
  local ours_args=(--max-rooms 2000)
  compare w7 --clients 10000 --rooms 1000 --rate 0.1 --duration 60 --size 64 --publishers 100 \
    --spread-sources --setup-timeout 900 --settle-timeout 300 --drain-timeout 20
}
w4() {
  # Ours only: 19,000 idle named connections; a fresh server per run so memory starts clean.
  for run in $(seq "$RUNS"); do
    log "w4 run $run/$RUNS"
    start_ours
    loadgen w4 chat "$PORT" "$PID" --mode idle --clients 19000 --setup-timeout 300 \
      --settle-timeout 120
    stop "$PID"
  done
}

need ngircd:ngircd
build
taskset -c "$LOADGEN_CPU" "$LOADGEN" --mode parse-bench >>"$RESULTS" 2>>"$OUT/loadgen.log"
{
  echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
  echo "chat-server: $CHAT_SERVER (work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "redis: $(redis-server --version | head -1)"
  echo "ngircd: $(ngircd --version 2>/dev/null | head -1)"
} >"$OUT/versions.txt"
for workload in $WORKLOADS; do
  case $workload in
    w1 | w2 | w3 | w4 | w5 | w7) "$workload" ;;
    *) echo "bench/run.sh: unknown workload $workload" >&2; exit 1 ;;
  esac
done
cat "$OUT/versions.txt"
python3 bench/table.py "$RESULTS" | tee "$OUT/table.md"
log "results: $RESULTS"
