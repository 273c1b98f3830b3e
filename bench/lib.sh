# bench/lib.sh: what the multi-daemon benchmark scripts share (sourced, not run).
#
# Starting redis-server and chat-server on free loopback ports, each pinned with taskset, and
# stopping every process a script started, by PID, when it exits. Nothing here sends traffic
# anywhere but 127.0.0.0/8.
#
# Before sourcing, a script may set OUT (results directory). It gets:
#   CHAT_SERVER, LOADGEN   binaries (built here unless given in the environment)
#   need [CMD:PKG...]      installs what is missing (as root)
#   start_redis CPU [PORT] sets REDIS_PORT, REDIS_PID
#   start_chat CPU ARGS... sets PORT, PID (the daemon's log is $OUT/chat-<port>.log)
#   start_ngircd CPU       sets PORT, PID (config and log: $OUT/ngircd-<port>.{conf,log})
#   stop PID               SIGTERM, then wait
#   rss_kib PID, fds PID, cpu_s PID, threads_cpu PID (CPU seconds by thread name, as JSON)
#   mono_ns                CLOCK_MONOTONIC now, in nanoseconds

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)-$(basename "$0" .sh)}
mkdir -p "$OUT"
PIDS=()

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# need [COMMAND:PACKAGE...]: installs redis-server, taskset, python3 and the given extras.
need() {
  local missing=() extra
  command -v redis-server >/dev/null || missing+=(redis-server)
  for extra in "$@"; do
    command -v "${extra%%:*}" >/dev/null || missing+=("${extra#*:}")
  done
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "$0: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
      exit 1
    fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Builds what is not given. Benchmarks of a shared work tree are best built from a snapshot:
#   git worktree add /tmp/bench-head HEAD && (cd /tmp/bench-head && bench/w6.sh)
build() {
  if [ -z "${CHAT_SERVER:-}" ]; then
    log "building chat-server (release)"
    cargo build --release -p chat-server
    CHAT_SERVER=target/release/chat-server
  fi
  if [ -z "${LOADGEN:-}" ]; then
    log "building the load generator (release)"
    cargo build --release --example loadgen -p chat
    LOADGEN=target/release/examples/loadgen
  fi
  # Copies, so a rebuild while a long run goes on cannot pull the binaries from under it.
  cp "$CHAT_SERVER" "$OUT/chat-server"
  cp "$LOADGEN" "$OUT/loadgen"
  CHAT_SERVER=$OUT/chat-server
  LOADGEN=$OUT/loadgen
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1 tries=${2:-100}
  while ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
      echo "$0: nothing listens on 127.0.0.1:$port" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# start_redis CPU [PORT]: a throwaway redis-server (no persistence) on a free port or PORT. It
# listens on 127.0.0.1 only; protected mode is off because it would refuse clients bound to
# other loopback sources (127.0.0.2-250, --spread-sources).
start_redis() {
  local cpu=$1
  REDIS_PORT=${2:-$(free_port)}
  taskset -c "$cpu" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode no --save '' \
    --appendonly no --maxclients 30000 --daemonize no </dev/null >>"$OUT/redis-$REDIS_PORT.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_for_port "$REDIS_PORT"
}

# start_chat CPU ARGS...: a chat-server on a free port, pinned to CPU, with ARGS added.
start_chat() {
  local cpu=$1
  shift
  PORT=$(free_port)
  # Each server its own database (CHAT_DB, which builds without a store ignore).
  CHAT_DB=${CHAT_DB:-$OUT/chat-$PORT.db} RUST_LOG=${CHAT_LOG:-warn} \
    taskset -c "$cpu" "$CHAT_SERVER" --listen "127.0.0.1:$PORT" "$@" \
    </dev/null >"$OUT/chat-$PORT.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  wait_for_port "$PORT"
}

# start_ngircd CPU: an ngircd on a free port, pinned to CPU.
start_ngircd() {
  local cpu=$1
  PORT=$(free_port)
  # High limits (MaxJoins = 0: a client may join any number of channels; W7's are in two), no
  # DNS/ident/PAM lookups, and an operator whose clients set user mode +F
  # ("relaxed flood protection": no throttling, 10 commands per read instead of 3). The
  # per-command penalty seconds stay (MaxPenaltyTime -1): they only slow joins (OPER, MODE),
  # and with MaxPenaltyTime = 0 ngircd outruns its 32 KiB per-client write buffer under W1 and
  # disconnects a third of the receivers ("Write buffer space exhausted").
  cat >"$OUT/ngircd-$PORT.conf" <<EOF
[Global]
	Name = bench.localhost
	Info = loadgen benchmark
	Listen = 127.0.0.1
	Ports = $PORT
	MotdPhrase = "benchmark"
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 31
	PingTimeout = 3600
	PongTimeout = 3600
[Options]
	DNS = no
	Ident = no
	PAM = no
[Operator]
	Name = bench
	Password = bench
EOF
  taskset -c "$cpu" ngircd -n -f "$OUT/ngircd-$PORT.conf" </dev/null >"$OUT/ngircd-$PORT.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  wait_for_port "$PORT"
}

# loadgen LABEL PROTOCOL PORT PID ARGS...: one run, its JSON line appended to the results.
# IRC clients OPER as IRC_OPER (default bench:bench, the operator start_ngircd configures) to
# lift ngircd's flood throttling; IRC_OPER= (empty) for a server that needs no such thing.
loadgen() {
  local label=$1 protocol=$2 port=$3 pid=$4
  shift 4
  local extra=() oper=${IRC_OPER-bench:bench}
  if [ "$protocol" = irc ] && [ -n "$oper" ]; then
    extra=(--oper "$oper")
  fi
  taskset -c "$LOADGEN_CPU" "$LOADGEN" --protocol "$protocol" --addr "127.0.0.1:$port" \
    --server-pid "$pid" --label "$label" --quiet "${extra[@]}" "$@" \
    >>"$RESULTS" 2>>"$OUT/loadgen.log" || {
    log "$label $protocol: load generator failed (see $OUT/loadgen.log)"
    tail -3 "$OUT/loadgen.log" >&2
  }
  tail -n 1 "$RESULTS" >&2
}

stop() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# threads_cpu PID: one JSON object, CPU seconds (user + system) by thread name, summed over the
# threads that share a name (a runtime's workers, say). Read it before the process is stopped.
threads_cpu() {
  python3 - "$1" <<'EOF'
import glob, json, os, sys
tick = os.sysconf("SC_CLK_TCK")
by_name = {}
for stat in glob.glob(f"/proc/{sys.argv[1]}/task/*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    by_name[name] = round(by_name.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick, 2)
print(json.dumps(by_name, sort_keys=True))
EOF
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
cpu_s() {
  python3 - "$1" <<'EOF'
import os, sys
stat = open(f"/proc/{sys.argv[1]}/stat").read()
fields = stat[stat.rindex(")") + 2:].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
EOF
}
mono_ns() { python3 -c 'import time; print(time.monotonic_ns())'; }

# Waits until a backplane daemon's log says it is connected to Redis.
wait_for_backplane() {
  local logfile=$1 tries=100
  while ! grep -q "backplane connected" "$logfile" 2>/dev/null; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
      echo "$0: $logfile never said 'backplane connected'" >&2
      exit 1
    fi
    sleep 0.1
  done
}
