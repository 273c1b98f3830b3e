#!/usr/bin/env bash
# bench/web.sh: the web door against the TCP door and Redis pub/sub, side by side in one run.
#
#   w1:   100 clients flat out in one room (1,000 messages each, 64 B), over TCP (`chat`), over
#         the page's WebSocket (`web`, the load generator's hand-framed client), and Redis pub/sub;
#         each round runs the three in turn on fresh servers, RUNS rounds, medians.
#   idle: IDLE (10,000) idle named connections over the WebSocket, then the same over TCP: server
#         memory per connection, and one broadcast reaching them all.
# Servers are pinned to SERVER_CPU, the load generator to LOADGEN_CPU. Loopback only; bounded.
#
# Environment (all optional): RUNS=3, IDLE=10000, WORKLOADS="w1 idle", CHAT_SERVER, LOADGEN,
# SERVER_CPU=0, LOADGEN_CPU=1, OUT, CHAT_DB (e.g. none).
RUNS=${RUNS:-3}
IDLE=${IDLE:-10000}
WORKLOADS=${WORKLOADS:-"w1 idle"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
source "$(dirname "$0")/lib.sh"
ulimit -n 20000
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
need
build

# chat_door LABEL DOOR ARGS...: a fresh daemon with a web listener; the load run through DOOR
# (chat: the TCP port; web: the WebSocket); stop.
chat_door() {
  local label=$1 door=$2
  shift 2
  local web_port
  web_port=$(free_port)
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 --listen-web "127.0.0.1:$web_port"
  wait_for_port "$web_port"
  if [ "$door" = web ]; then
    loadgen "$label" web "$web_port" "$PID" "$@"
  else
    loadgen "$label" chat "$PORT" "$PID" "$@"
  fi
  stop "$PID"
}

redis_w1() {
  start_redis "$SERVER_CPU"
  loadgen w1-redis redis "$REDIS_PORT" "$REDIS_PID" "$@"
  stop "$REDIS_PID"
}

W1=(--clients 100 --messages 1000 --size 64)
for workload in $WORKLOADS; do
  for run in $(seq "$RUNS"); do
    log "$workload round $run/$RUNS"
    case $workload in
      w1)
        chat_door w1-tcp chat "${W1[@]}"
        chat_door w1-web web "${W1[@]}"
        redis_w1 "${W1[@]}"
        ;;
      idle)
        chat_door idle-web web --mode idle --clients "$IDLE" --setup-timeout 300 --settle-timeout 120
        chat_door idle-tcp chat --mode idle --clients "$IDLE" --setup-timeout 300 --settle-timeout 120
        ;;
      *) echo "bench/web.sh: unknown workload $workload" >&2; exit 1 ;;
    esac
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("{"):
        r = json.loads(line)
        runs[r["label"]].append(r)
def median(label, f):
    values = [f(r) for r in runs.get(label, []) if f(r) is not None]
    return statistics.median(values) if values else None
def fmt(v):
    return "-" if v is None else (f"{v:,.2f}" if v < 1000 else f"{v:,.0f}")
per_delivery = lambda r: r["server"]["cpu_s"] * 1e9 / r["delivered"] if r.get("delivered") else None
rows = [
    ("w1", "deliveries/s", lambda r: r.get("deliveries_per_s"), ["w1-tcp", "w1-web", "w1-redis"]),
    ("w1", "server CPU ns/delivery", per_delivery, ["w1-tcp", "w1-web", "w1-redis"]),
    ("w1", "lost", lambda r: r.get("lost"), ["w1-tcp", "w1-web", "w1-redis"]),
    ("idle", "RSS bytes/idle connection", lambda r: (r.get("server") or {}).get("bytes_per_connection"), ["idle-tcp", "idle-web"]),
    ("idle", "broadcast to all, ms", lambda r: (r.get("broadcast") or {}).get("all_ms"), ["idle-tcp", "idle-web"]),
]
print("| workload | figure | TCP | WebSocket | Redis | WebSocket/TCP | WebSocket/Redis |")
print("|---|---|---|---|---|---|---|")
for workload, name, f, labels in rows:
    values = [median(label, f) for label in labels]
    tcp, web = values[0], values[1]
    redis = values[2] if len(values) > 2 else None
    ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.3f}"
    print(f"| {workload} | {name} | {fmt(tcp)} | {fmt(web)} | {fmt(redis)} | {ratio(web, tcp)} | {ratio(web, redis)} |")
print(f"\n({len(runs.get('w1-tcp', []))} w1 and {len(runs.get('idle-web', []))} idle rounds; medians)")
PY
log "results: $RESULTS"
