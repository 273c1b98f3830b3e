#!/usr/bin/env bash
# bench/w6.sh: W6: 100,000 idle named clients spread over six chat-server processes on
# this machine that share one room through one redis-server; the memory they cost and the time
# one broadcast takes to reach all of them.
#
# No process may hold 20,000 descriptors here, so the clients come from PROCS load generator
# processes (`loadgen --mode idle --broadcast external`, 16,667 connections each), each spreading
# its connections round robin over the six daemons and over source addresses 127.0.0.1-250. Once
# every process has joined and gone quiet, the daemons' and Redis's memory is sampled, and one
# more client (`loadgen --mode cast`) joins daemon 1 and sends one line. All load generators share
# one CLOCK_MONOTONIC epoch: the cast reports when it sent, each idle process when its last
# connection received the line (the kernel's receive stamp), and the broadcast time is the
# maximum over processes minus the send time. The clients then stay HOLD seconds while every
# daemon's /metrics is read (how many users each one believes the room has).
#
#   bench/w6.sh                       # one run
#   RUNS=3 bench/w6.sh                # three, each with fresh daemons, Redis and clients
#
# Environment: RUNS=1 CLIENTS=100000 DAEMONS=6 PROCS=6 HOLD=90 SERVER_CPU=0 LOADGEN_CPU=1 (set
# either to "" for no pinning) CHAT_SERVER LOADGEN OUT. Results: $OUT/run-N/, $OUT/w6.jsonl and
# $OUT/table.md.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-1}
CLIENTS=${CLIENTS:-100000}
DAEMONS=${DAEMONS:-6}
PROCS=${PROCS:-6}
# Seconds the idle clients stay after the broadcast, while each daemon's /metrics is read.
HOLD=${HOLD:-90}
SERVER_CPU=${SERVER_CPU-0}
LOADGEN_CPU=${LOADGEN_CPU-1}
export CHAT_LOG="warn,chat_server::backplane=info"
pin() { if [ -n "$1" ]; then echo "taskset -c $1"; fi; }

need
build
per_proc=$(((CLIENTS + PROCS - 1) / PROCS))
per_daemon=$(((CLIENTS + DAEMONS - 1) / DAEMONS))
if [ $((per_proc + 100)) -ge 20000 ] || [ $((per_daemon + 100)) -ge 20000 ]; then
  echo "$0: $per_proc connections per load generator or $per_daemon per daemon would reach 20,000 descriptors; raise PROCS or DAEMONS" >&2
  exit 1
fi

kernel_memory() {
  # Slab and unreclaimable slab (KiB), and the pages TCP buffers hold (sockstat).
  awk '/^Slab:/ {s=$2} /^SUnreclaim:/ {u=$2} END {printf "\"slab_kib\": %d, \"sunreclaim_kib\": %d", s, u}' /proc/meminfo
  awk '/^TCP:/ {for (i = 2; i < NF; i += 2) if ($i == "mem") printf ", \"tcp_mem_pages\": %d", $(i + 1); else if ($i == "alloc") printf ", \"tcp_alloc\": %d", $(i + 1)}' /proc/net/sockstat
}

# metrics PORT: one scrape of a daemon's /metrics as JSON, with how long it took. Only after the
# broadcast: chat_room_users lists (and sorts) every user of the room under the room's lock, which
# takes a daemon many seconds at 100,000 users (see BENCHMARKS.md).
metrics() {
  local port=$1
  python3 - "$port" <<'EOF'
import json, socket, sys, time
started = time.monotonic()
out = {}
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
    s.settimeout(600)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    for line in data.decode().split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            k, v = line.split()
            out[k] = int(float(v))
except OSError as e:
    out["error"] = str(e)
out["scrape_s"] = round(time.monotonic() - started, 2)
print(json.dumps(out))
EOF
}

one_run() {
  local run=$1 dir=$OUT/run-$1 k
  mkdir -p "$dir"
  start_redis "${SERVER_CPU:-0-1}"
  local redis_pid=$REDIS_PID redis_port=$REDIS_PORT
  local daemon_pids=() daemon_ports=() metric_ports=() addrs=()
  for k in $(seq "$DAEMONS"); do
    local mport
    mport=$(free_port)
    start_chat "${SERVER_CPU:-0-1}" --rate 0 --no-color --max-clients 19000 \
      --backplane "redis://127.0.0.1:$redis_port/0" --metrics "127.0.0.1:$mport"
    daemon_pids+=("$PID")
    daemon_ports+=("$PORT")
    metric_ports+=("$mport")
    addrs+=(--addr "127.0.0.1:$PORT")
  done
  for k in "${daemon_ports[@]}"; do wait_for_backplane "$OUT/chat-$k.log"; done
  sleep 2
  {
    printf '{"phase": "before", "daemons_rss_kib": ['
    local sep=""
    for k in "${daemon_pids[@]}"; do printf '%s%s' "$sep" "$(rss_kib "$k")"; sep=", "; done
    printf '], "redis_rss_kib": %s, %s}\n' "$(rss_kib "$redis_pid")" "$(kernel_memory)"
  } >"$dir/memory.jsonl"

  local epoch tag
  epoch=$(mono_ns)
  tag=$((RANDOM * 32768 + RANDOM))
  log "run $run: $CLIENTS idle clients from $PROCS load generators over $DAEMONS daemons (Redis $redis_port)"
  local lg_pids=() p
  for p in $(seq 0 $((PROCS - 1))); do
    local n=$per_proc
    [ $((p * per_proc + n)) -gt "$CLIENTS" ] && n=$((CLIENTS - p * per_proc))
    # Each process starts its round robin at another daemon.
    local rotated=() d
    for d in $(seq 0 $((DAEMONS - 1))); do
      rotated+=(--addr "127.0.0.1:${daemon_ports[$(((p + d) % DAEMONS))]}")
    done
    $(pin "$LOADGEN_CPU") "$LOADGEN" --mode idle --broadcast external --run-tag "$tag" \
      --clock-epoch "$epoch" "${rotated[@]}" --clients "$n" --name-prefix "w6r${run}p$p" \
      --source-offset $((p * 41)) --concurrency 100 --ready-file "$dir/ready-$p" \
      --setup-timeout 1200 --settle 3 --settle-timeout 900 --broadcast-timeout 1800 \
      --hold "$HOLD" --watch "The room is degraded" --watch "The room is whole again" \
      --watch "their server is gone" \
      --label "w6-p$p" >"$dir/idle-$p.json" 2>"$dir/idle-$p.log" &
    lg_pids+=("$!")
    PIDS+=("$!")
  done
  local joined_at=0 waited=0
  while true; do
    local ready=0
    for p in $(seq 0 $((PROCS - 1))); do [ -e "$dir/ready-$p" ] && ready=$((ready + 1)); done
    [ "$ready" -eq "$PROCS" ] && break
    for p in "${lg_pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        log "a load generator (PID $p) ended early:"
        tail -3 "$dir"/idle-*.log >&2
        exit 1
      fi
    done
    waited=$((waited + 5))
    if [ $((waited % 30)) -eq 0 ]; then
      log "run $run: $ready/$PROCS load generators ready after ${waited}s; $(tail -qn1 "$dir"/idle-*.log | awk '{print $4}' | tr '\n' ' ')"
    fi
    [ "$waited" -lt 1500 ] || { log "not all load generators got ready in 1500 s"; exit 1; }
    sleep 5
  done
  log "run $run: all $PROCS load generators ready after ~${waited}s"
  sleep 5

  {
    printf '{"phase": "idle", "daemons_rss_kib": ['
    local sep=""
    for k in "${daemon_pids[@]}"; do printf '%s%s' "$sep" "$(rss_kib "$k")"; sep=", "; done
    printf '], "daemons_fds": ['
    sep=""
    for k in "${daemon_pids[@]}"; do printf '%s%s' "$sep" "$(fds "$k")"; sep=", "; done
    printf '], "redis_rss_kib": %s, "loadgen_rss_kib": [' "$(rss_kib "$redis_pid")"
    sep=""
    for k in "${lg_pids[@]}"; do printf '%s%s' "$sep" "$(rss_kib "$k")"; sep=", "; done
    printf '], %s}\n' "$(kernel_memory)"
  } >>"$dir/memory.jsonl"

  # What 100,000 idle users cost when nothing happens: CPU over 10 s.
  local cpu0=() cpu1=() redis0 redis1
  for k in "${daemon_pids[@]}"; do cpu0+=("$(cpu_s "$k")"); done
  redis0=$(cpu_s "$redis_pid")
  sleep 10
  for k in "${daemon_pids[@]}"; do cpu1+=("$(cpu_s "$k")"); done
  redis1=$(cpu_s "$redis_pid")
  python3 -c "
import json, sys
a = [float(x) for x in '${cpu0[*]}'.split()]
b = [float(x) for x in '${cpu1[*]}'.split()]
print(json.dumps({'phase': 'idle-cpu', 'seconds': 10, 'daemons_cpu_s': [round(y - x, 3) for x, y in zip(a, b)],
                  'redis_cpu_s': round($redis1 - $redis0, 3)}))" >>"$dir/memory.jsonl"

  log "run $run: casting one line from a client on daemon 1"
  $(pin "$LOADGEN_CPU") "$LOADGEN" --mode cast --addr "127.0.0.1:${daemon_ports[0]}" \
    --run-tag "$tag" --clock-epoch "$epoch" --name-prefix "w6r${run}c" --settle 3 --hold 3 \
    --label w6-cast >"$dir/cast.json" 2>"$dir/cast.log"
  # Every idle process has the line (or gave up), and holds its connections open for HOLD s.
  local waited=0
  while [ "$(grep -l "holding the connections" "$dir"/idle-*.log 2>/dev/null | wc -l)" -lt "$PROCS" ] \
    && [ $waited -lt 300 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  # The room as each daemon sees it (clients still connected), scraped from all six at once
  # (each scrape takes seconds).
  for k in "${!metric_ports[@]}"; do metrics "${metric_ports[$k]}" >"$dir/metrics-$k.json" & done
  local scraped=0
  while [ "$(cat "$dir"/metrics-*.json 2>/dev/null | grep -c scrape_s)" -lt "$DAEMONS" ] && [ $scraped -lt 700 ]; do
    sleep 1
    scraped=$((scraped + 1))
  done
  {
    printf '{"phase": "after", "metrics": ['
    local sep=""
    for k in "${!metric_ports[@]}"; do printf '%s%s' "$sep" "$(cat "$dir/metrics-$k.json" 2>/dev/null || echo '{}')"; sep=", "; done
    printf '], "warnings": ['
    sep=""
    for k in "${daemon_ports[@]}"; do
      printf '%s{"silent": %s, "claims": %s, "lost": %s}' "$sep" \
        "$(grep -c 'node went silent' "$OUT/chat-$k.log" || true)" \
        "$(grep -c 'name claim' "$OUT/chat-$k.log" || true)" \
        "$(grep -c 'backplane lost' "$OUT/chat-$k.log" || true)"
      sep=", "
    done
    printf ']}\n'
  } >>"$dir/memory.jsonl"
  waited=0
  for p in "${lg_pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $waited -lt $((HOLD + 300)) ]; do
      sleep 1
      waited=$((waited + 1))
    done
    kill -0 "$p" 2>/dev/null && { log "load generator $p still running; stopping it"; kill "$p"; }
    wait "$p" 2>/dev/null || true
  done
  for k in "${daemon_ports[@]}"; do cp "$OUT/chat-$k.log" "$dir/"; done
  for k in "${daemon_pids[@]}"; do stop "$k"; done
  stop "$redis_pid"
  python3 bench/w6_report.py "$dir" "$run" | tee -a "$OUT/w6.jsonl" >/dev/null
  python3 bench/w6_report.py --text "$dir" "$run" >&2
  sleep 2
}

{
  echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
  echo "redis: $(redis-server --version | head -1)"
  echo "pinning: daemons and redis-server on CPU ${SERVER_CPU:-any}, load generators on CPU ${LOADGEN_CPU:-any}"
  echo "clients: $CLIENTS over $DAEMONS daemons from $PROCS load generators ($per_proc each)"
} >"$OUT/versions.txt"
: >"$OUT/w6.jsonl"
for run in $(seq "$RUNS"); do
  one_run "$run"
done
cat "$OUT/versions.txt"
python3 bench/w6_report.py --table "$OUT/w6.jsonl" | tee "$OUT/table.md"
