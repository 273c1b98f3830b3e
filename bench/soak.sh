#!/usr/bin/env bash
# bench/soak.sh: the soak run (not part of CI). One chat-server with its default limits,
# the load generator at a moderate rate for DURATION seconds with connect/disconnect churn, and
# the server's RSS (VmRSS) and open descriptors (/proc/PID/fd) sampled every SAMPLE seconds.
# Reports whether memory and descriptors stay flat, and deliveries, losses and errors.
#
#   bench/soak.sh                         # 10 minutes: 200 clients, 20 senders at 10 msg/s, churn 2/s
#   DURATION=60 bench/soak.sh             # a short rehearsal
#
# Environment (all optional): DURATION=600 CLIENTS=200 SENDERS=20 RATE=10 CHURN=2 LINGER=3
# SAMPLE=10 CHAT_SERVER=path LOADGEN=path OUT=dir. Nothing is pinned unless SERVER_CPU and
# LOADGEN_CPU are set. Results: $OUT/samples.tsv, $OUT/soak.json, $OUT/summary.txt.
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-600}
CLIENTS=${CLIENTS:-200}
SENDERS=${SENDERS:-20}
RATE=${RATE:-10}
CHURN=${CHURN:-2}
LINGER=${LINGER:-3}
SAMPLE=${SAMPLE:-10}

need
build
pin() { if [ -n "${1:-}" ]; then echo "taskset -c $1"; fi; }

# The daemon as an operator would run it: default limits (--rate 10, --queue 1024, ...), info
# logs (one line per connect and disconnect).
PORT=$(free_port)
RUST_LOG=info $(pin "${SERVER_CPU:-}") "$CHAT_SERVER" --listen "127.0.0.1:$PORT" \
  </dev/null >"$OUT/chat-server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_for_port "$PORT"
log "soak: chat-server PID $SERVER on 127.0.0.1:$PORT; $CLIENTS clients, $SENDERS senders at" \
  "$RATE msg/s, churn $CHURN/s, $DURATION s; samples every $SAMPLE s in $OUT/samples.tsv"

SAMPLES=$OUT/samples.tsv
printf 't_s\tphase\trss_kib\tfds\tthreads\n' >"$SAMPLES"
started=$(date +%s.%N)
elapsed() { awk -v now="$(date +%s.%N)" -v t0="$started" 'BEGIN { printf "%.1f", now - t0 }'; }
sample() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$(elapsed)" "$1" "$(rss_kib "$SERVER")" "$(fds "$SERVER")" \
    "$(awk '/^Threads:/ {print $2}' "/proc/$SERVER/status")" >>"$SAMPLES"
}
sample before
# Samples while the load generator runs (it is killed as soon as the load generator exits).
sampler() {
  local limit=$((DURATION / SAMPLE + 30)) n=0
  while [ $n -lt $limit ] && kill -0 "$SERVER" 2>/dev/null; do
    sleep "$SAMPLE"
    sample load
    n=$((n + 1))
  done
}
sampler &
SAMPLER=$!
PIDS+=("$SAMPLER")

set +e
$(pin "${LOADGEN_CPU:-}") "$LOADGEN" --addr "127.0.0.1:$PORT" --clients "$CLIENTS" \
  --senders "$SENDERS" --rate "$RATE" --duration "$DURATION" --churn "$CHURN" \
  --churn-linger "$LINGER" --max-send-time $((DURATION + 120)) --drain-timeout 30 \
  --server-pid "$SERVER" --label soak --spread-sources >"$OUT/soak.json" 2>"$OUT/loadgen.log"
rc=$?
set -e
kill "$SAMPLER" 2>/dev/null || true
# One last sample once the load is gone (every client and churner closed).
sleep 3
sample after
kill -TERM "$SERVER"
server_rc=0
wait "$SERVER" || server_rc=$?
log "soak: loadgen exit $rc, chat-server exit $server_rc after SIGTERM"

python3 - "$SAMPLES" "$OUT/soak.json" "$rc" "$server_rc" "$OUT/chat-server.log" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
samples_path, result_path, rc, server_rc, server_log = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(samples_path)][1:]
rows = [(float(t), ph, int(r), int(f), int(th)) for t, ph, r, f, th in rows]
before = [r for r in rows if r[1] == "before"][0]
load = [r for r in rows if r[1] == "load"]
after = [r for r in rows if r[1] == "after"][-1]
print(f"samples: {len(rows)} ({len(load)} under load, every {load[1][0] - load[0][0]:.0f} s)")
print(f"before clients: RSS {before[2]} KiB, {before[3]} fds")
rss = [r[2] for r in load]
fds = [r[3] for r in load]
print(f"under load ({load[0][0]:.0f}-{load[-1][0]:.0f} s): RSS first {rss[0]} KiB, last {rss[-1]} KiB, "
      f"min {min(rss)}, max {max(rss)} (last - first {rss[-1] - rss[0]:+d} KiB)")
print(f"  fds first {fds[0]}, last {fds[-1]}, min {min(fds)}, max {max(fds)}")
half = len(rss) // 2
if half >= 2:
    print(f"  RSS mean first half {sum(rss[:half]) / half:.0f} KiB, second half "
          f"{sum(rss[half:]) / (len(rss) - half):.0f} KiB")
print(f"after clients left: RSS {after[2]} KiB, {after[3]} fds")
try:
    r = json.loads(open(result_path).read().strip().splitlines()[-1])
except Exception as e:  # the loadgen failed: say so
    print(f"no load generator result ({e}); loadgen exit {rc}")
    sys.exit(1)
print(f"sent {r['sent']} messages in {r['send_s']} s; delivered {r['delivered']}/{r['expected']}, "
      f"lost {r['lost']}, duplicates {r['duplicates']}, out of order {r['out_of_order']}, "
      f"complete {r['complete']}")
print(f"errors: senders failed {r['senders_failed']}, receivers disconnected "
      f"{r['receivers_disconnected']} ({r['disconnect_reason']}), told they missed {r['missed_told']}")
c = r.get("churn") or {}
print(f"churn: {c.get('started')} started, {c.get('joined')} joined, {c.get('left')} left, "
      f"{c.get('failed')} failed ({c.get('first_error')})")
l = r["latency_us"]
print(f"latency p50 {l['p50'] / 1e3:.2f} ms, p99 {l['p99'] / 1e3:.2f} ms, max {l['max'] / 1e3:.2f} ms")
s = r.get("server") or {}
print(f"server CPU {s.get('cpu_s')} s over {r['wall_s']} s; peak RSS {s.get('peak_rss_kib')} KiB; "
      f"loadgen CPU {r['loadgen']['cpu_s']} s")
warn = sum(1 for line in open(server_log) if " WARN " in line or " ERROR " in line)
print(f"server log: {warn} WARN/ERROR lines; loadgen exit {rc}; chat-server exit {server_rc} on SIGTERM")
EOF
