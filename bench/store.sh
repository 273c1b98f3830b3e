#!/usr/bin/env bash
# bench/store.sh: what keeping history costs, and how the store holds up when it is big.
#
#   1. W1 (100 clients x 1,000 messages of 64 B flat out, all in #lobby) with --db none (no
#      history: the baseline), --db :memory: and the default store on a file, and with
#      BASELINE=path also that build on a file ("before"), taking turns round by round in an
#      order that rotates (RUNS rounds, a fresh server each): deliveries/s, lost, server CPU per
#      delivery; per-thread CPU from /proc/PID/task/*/stat once every message is stored (the
#      store's thread `chat-store`, the runtime's workers `tokio-rt-worker`); how far behind the
#      store was when the last line was delivered and how long it took to catch up; the store's
#      batch size (messages written / transactions), lines dropped, and on file the bytes the
#      daemon wrote per message (/proc/PID/io write_bytes, WAL and checkpoints included); and
#      the store's lag: /metrics sampled every 20 ms (chat_messages_received_total against
#      chat_store_written_total + chat_store_dropped_total), the longest a received line waited
#      to be written (to within the sampling period).
#   1b. (PARTS=lag) the same lag with a file store under W2 (100 clients, 10 senders x
#      100 lines/s, 20 s) and W3 (1,000 clients, 10 senders x 200 lines flat out), RUNS each:
#      the rates at which PRODUCT.md promises that a line others saw a second before SIGKILL
#      is in the history.
#   2. Databases of SIZES messages (examples/history_fill.rs, the daemon's own schema and
#      inserts; kept in FILL_DIR between runs, filling 10 million takes several minutes): file
#      bytes per message at each size.
#   3. On the largest: a restart (time to listen, then to serve a join with its replay; RUNS
#      times), then /history 500 and /search p50/p99 (examples/history_probe.rs, QUERIES each)
#      alone and while W2 (100 clients, 10 senders x 100 lines/s) runs on the same daemon.
#
# The server is pinned to SERVER_CPU (its store thread with it), the load generator and the
# probe to LOADGEN_CPU. Loopback only; every run is bounded. Prints a markdown table.
#
# Environment (all optional): RUNS=3, PARTS="w1 size queries" (also: lag),
# BASELINE (a chat-server binary to compare on a file), REPORT (results.jsonl to print), SIZES="1000000 10000000", QUERIES=200,
# FILL_DIR=target/bench/history-db, SERVER_CPU=0, LOADGEN_CPU=1, CHAT_SERVER, LOADGEN, OUT.
RUNS=${RUNS:-3}
SIZES=${SIZES:-"1000000 10000000"}
QUERIES=${QUERIES:-200}
PARTS=${PARTS:-"w1 size queries"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
FILL_DIR=${FILL_DIR:-target/bench/history-db}
source "$(dirname "$0")/lib.sh"
# report: the tables, from $RESULTS.
report() {
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs): return statistics.median(xs) if xs else float("nan")
def runs(label): return [r for r in rows if r.get("label") == label]
configs = [c for c in ["none", ":memory:", "file", "before"] if runs(f"w1-{c}")]
if configs:
    names = {"none": "`--db none`", ":memory:": "`:memory:`", "file": "file", "before": "file, before"}
    print("| W1, median of %d | " % len(runs("w1-none") or runs(f"w1-{configs[0]}")) + " | ".join(names[c] for c in configs) + " |")
    print("|---" * (len(configs) + 1) + "|")
    def row(name, f, fmt):
        cells = []
        for c in configs:
            xs = [v for v in (f(r, s) for r, s in zip(runs(f"w1-{c}"), runs(f"store-w1-{c}"))) if v is not None]
            cells.append(fmt(med(xs)) if xs else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    def ratio_row(name, f):
        base = [f(r, s) for r, s in zip(runs("w1-none"), runs("store-w1-none"))]
        cells = []
        for c in configs:
            xs = [f(r, s) for r, s in zip(runs(f"w1-{c}"), runs(f"store-w1-{c}"))]
            ratios = [x / b for x, b in zip(xs, base)]
            cells.append(f"{med(ratios):.2f} (rounds: " + ", ".join(f"{r:.2f}" for r in ratios) + ")")
        print(f"| {name} | " + " | ".join(cells) + " |")
    dps = lambda r, s: r["deliveries_per_s"]
    row("deliveries/s", dps, lambda v: f"{v / 1e6:.2f} M/s")
    if runs("w1-none"):
        ratio_row("deliveries/s / `--db none`, median of the rounds' ratios", dps)
    row("lost", lambda r, s: r["lost"], lambda v: f"{v:.0f}")
    row("server CPU per delivery", lambda r, s: r["server"]["cpu_s"] * 1e9 / r["delivered"], lambda v: f"{v:.0f} ns")
    tick = lambda name: (lambda r, s: sum(v for k, v in s["threads"].items() if k == name))
    row("CPU of the `tokio-rt-worker` threads (sum)", tick("tokio-rt-worker"), lambda v: f"{v:.2f} s")
    row("CPU of `chat-store`", lambda r, s: s["threads"].get("chat-store"), lambda v: f"{v:.2f} s")
    row("`chat-store` CPU per message stored", lambda r, s: s["threads"]["chat-store"] * 1e6 / s["written"] if s["written"] else None, lambda v: f"{v:.1f} µs")
    row("messages stored when the last line was delivered", lambda r, s: s["written_at_last_delivery"] if "chat-store" in s["threads"] else None, lambda v: f"{v:,.0f}")
    row("longest a received line waited to be stored (20 ms samples)", lambda r, s: s.get("lag_ms") if "chat-store" in s["threads"] else None, lambda v: f"{v:,.0f} ms")
    row("then until all were stored", lambda r, s: s["caught_up_ms"] if "chat-store" in s["threads"] else None, lambda v: f"{v:,.0f} ms")
    row("messages per transaction", lambda r, s: s["written"] / s["batches"] if s["batches"] else None, lambda v: f"{v:,.0f}")
    row("messages not stored (dropped, of 100,000)", lambda r, s: 100000 - s["written"] if "chat-store" in s["threads"] else None, lambda v: f"{v:,.0f}")
    row("bytes written per message (WAL, checkpoints)", lambda r, s: s["write_bytes"] / s["written"] if s["written"] and s["write_bytes"] else None, lambda v: f"{v:,.0f}")
    print()
for workload in ["w2", "w3"]:
    ls = runs(f"store-lag-{workload}")
    if ls:
        lags = [r["lag_ms"] for r in ls]
        print(f"| {workload} on a file: longest a received line waited to be stored | median {med(lags):,.0f} ms, worst {max(lags):,.0f} ms (rounds: " + ", ".join(str(x) for x in lags) + f"); dropped {sum(r['dropped'] for r in ls)} |")
if runs("store-lag-w2") or runs("store-lag-w3"):
    print()
sizes = runs("store-size")
if sizes:
    print("| database | messages | file bytes | bytes per message |")
    print("|---|---|---|---|")
    for r in sizes:
        print(f"| history-{r['messages']}.db | {r['messages']:,} | {r['file_bytes']:,} | {r['file_bytes'] / r['messages']:.0f} |")
    print()
rs = runs("store-restart")
if rs:
    print(f"| on the largest database | median of {len(rs)} | worst |")
    print("|---|---|---|")
    for key, name in [("listen_ms", "start to listening"), ("join_with_replay_ms", "connect to the end of the join's replay")]:
        xs = [r[key] for r in rs]
        print(f"| {name} | {med(xs):.0f} ms | {max(xs):.0f} ms |")
    for label, when in [("store-queries-alone", "alone"), ("store-queries-w2", "while W2 runs")]:
        for r in runs(label):
            print(f"| /history {r['history_n']} {when}: p50 / p99 / max | {r['history_p50_ms']:.1f} / {r['history_p99_ms']:.1f} ms | {r['history_max_ms']:.1f} ms |")
            print(f"| /search {r['search']} ({r['search_found']} found) {when}: p50 / p99 / max | {r['search_p50_ms']:.1f} / {r['search_p99_ms']:.1f} ms | {r['search_max_ms']:.1f} ms |")
PY
}

# REPORT=path/results.jsonl: print the tables of an earlier run, run nothing.
if [ -n "${REPORT:-}" ]; then
  RESULTS=$REPORT
  report
  exit 0
fi
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
mkdir -p "$FILL_DIR"

need curl:curl
build
if [[ $PARTS == *size* || $PARTS == *queries* ]]; then
  log "building the history tools (release)"
  cargo build --release --example history_fill --example history_probe -p chat
  cp target/release/examples/history_fill target/release/examples/history_probe "$OUT/"
fi
CONFIGS="none :memory: file"
if [ -n "${BASELINE:-}" ]; then
  cp "$BASELINE" "$OUT/chat-server-before"
  CONFIGS="$CONFIGS before"
fi

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
record() { echo "$1" >>"$RESULTS"; echo "$1" >&2; }

# threads PID: CPU seconds (utime + stime) per thread name, as JSON: {"chat-store": 1.2, ...}.
threads() {
  python3 - "$1" <<'PY'
import glob, json, os, sys
tick = os.sysconf("SC_CLK_TCK")
cpu = {}
for task in glob.glob(f"/proc/{sys.argv[1]}/task/*"):
    try:
        name = open(f"{task}/comm").read().strip()
        stat = open(f"{task}/stat").read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    cpu[name] = round(cpu.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick, 2)
print(json.dumps(cpu))
PY
}

# sample_store MPORT FILE: every 20 ms, "seconds received stored" from /metrics, until killed.
sample_store() {
  taskset -c "$LOADGEN_CPU" python3 - "$1" "$2" <<'PY' &
import sys, time, urllib.request
port, out = sys.argv[1], open(sys.argv[2], "w")
def read():
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    m = {l.split()[0]: int(l.split()[1]) for l in page.splitlines() if l and not l.startswith("#")}
    return m["chat_messages_received_total"], m["chat_store_written_total"] + m["chat_store_dropped_total"]
while True:
    try:
        received, stored = read()
        out.write(f"{time.monotonic():.4f} {received} {stored}\n")
        out.flush()
    except OSError:
        pass
    time.sleep(0.02)
PY
  SAMPLER=$!
  PIDS+=("$SAMPLER")
}

# lag_ms FILE: the longest a received line waited to be stored, from sample_store's samples.
lag_ms() {
  python3 - "$1" <<'PY'
import bisect, sys
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
times = [t for t, _, _ in samples]
received = [r for _, r, _ in samples]
worst = 0.0
for t, r, stored in samples:
    if stored < r:
        # The oldest line not yet stored is number stored + 1: when had it been received?
        first = bisect.bisect_left(received, stored + 1)
        worst = max(worst, t - times[first])
print(round(worst * 1000))
PY
}

# w1 STORE: one W1 run on a fresh server whose --db is STORE ("none", ":memory:", "file", or
# "before": BASELINE's build on a file). Once the load generator has every delivery, waits
# (60 s at most) until the store has written every message, timing how long that took.
w1() {
  local store=$1 db=$1 server=$CHAT_SERVER
  [ "$store" = file ] || [ "$store" = before ] && db="$OUT/w1-$RANDOM.db"
  [ "$store" = before ] && server=$OUT/chat-server-before
  local mport
  mport=$(free_port)
  CHAT_SERVER=$server CHAT_DB=$db start_chat "$SERVER_CPU" --rate 0 --no-color \
    --metrics "127.0.0.1:$mport"
  sample_store "$mport" "$OUT/samples-$PORT.txt"
  loadgen "w1-$store" chat "$PORT" "$PID" --clients 100 --messages 1000 --size 64
  local delivered_at written_then tries=6000 caught_up_ms=0
  delivered_at=$(mono_ns)
  written_then=$(metric "$mport" chat_store_written_total)
  if [ "$store" != none ]; then
    # Every message is written or was dropped (counted as it is refused).
    while [ $(($(metric "$mport" chat_store_written_total) + $(metric "$mport" chat_store_dropped_total))) -lt 100000 ] && [ $tries -gt 0 ]; do
      sleep 0.01
      tries=$((tries - 1))
    done
    caught_up_ms=$((($(mono_ns) - delivered_at) / 1000000))
  fi
  local written batches dropped io cpu
  written=$(metric "$mport" chat_store_written_total)
  batches=$(metric "$mport" chat_store_batches_total)
  dropped=$(metric "$mport" chat_store_dropped_total)
  io=$(awk '/^write_bytes:/ {print $2}' "/proc/$PID/io")
  cpu=$(threads "$PID")
  stop "$SAMPLER"
  record "{\"label\":\"store-w1-$store\",\"written\":$written,\"batches\":$batches,\"dropped\":$dropped,\"write_bytes\":$io,\"written_at_last_delivery\":$written_then,\"caught_up_ms\":$caught_up_ms,\"lag_ms\":$(lag_ms "$OUT/samples-$PORT.txt"),\"threads\":$cpu}"
  stop "$PID"
  rm -f "$db" "$db-wal" "$db-shm"
  return 0
}

if [[ $PARTS == *w1* ]]; then
  read -ra order <<<"$CONFIGS"
  for run in $(seq "$RUNS"); do
    log "W1 round $run/$RUNS: ${order[*]}"
    for store in "${order[@]}"; do
      w1 "$store"
    done
    order=("${order[@]:1}" "${order[0]}")
  done
fi

# lag WORKLOAD ARGS...: the store's lag on a file under a paced or small load.
lag() {
  local workload=$1 db="$OUT/lag-$RANDOM.db" mport
  shift
  mport=$(free_port)
  CHAT_DB=$db start_chat "$SERVER_CPU" --rate 0 --no-color --metrics "127.0.0.1:$mport" \
    --max-clients 30000
  sample_store "$mport" "$OUT/samples-$PORT.txt"
  loadgen "lag-$workload" chat "$PORT" "$PID" "$@"
  sleep 1
  stop "$SAMPLER"
  record "{\"label\":\"store-lag-$workload\",\"lag_ms\":$(lag_ms "$OUT/samples-$PORT.txt"),\"dropped\":$(metric "$mport" chat_store_dropped_total),\"threads\":$(threads "$PID")}"
  stop "$PID"
  rm -f "$db" "$db-wal" "$db-shm"
}

if [[ $PARTS == *lag* ]]; then
  for run in $(seq "$RUNS"); do
    log "store lag under W2 and W3, round $run/$RUNS"
    lag w2 --clients 100 --senders 10 --rate 100 --duration 20 --size 64
    lag w3 --clients 1000 --senders 10 --messages 200 --size 64 --setup-timeout 300
  done
fi

largest=""
[[ $PARTS == *size* || $PARTS == *queries* ]] || SIZES=""
for size in $SIZES; do
  db="$FILL_DIR/history-$size.db"
  if [ ! -s "$db" ]; then
    log "filling $db with $size messages"
    rm -f "$db" "$db-wal" "$db-shm"
    "$OUT/history_fill" --db "$db" --messages "$size" >"$OUT/fill-$size.json"
  fi
  bytes=$(stat -c %s "$db")
  record "{\"label\":\"store-size\",\"messages\":$size,\"file_bytes\":$bytes}"
  largest=$db
done

for run in $(seq "$RUNS"); do
  [[ $PARTS == *queries* ]] || break
  log "restart on $largest, $run/$RUNS"
  line=$(taskset -c "$LOADGEN_CPU" "$OUT/history_probe" --server "$CHAT_SERVER" --db "$largest")
  record "{\"label\":\"store-restart\",${line#\{}"
done

if [[ $PARTS == *queries* ]]; then
  CHAT_DB=$largest start_chat "$SERVER_CPU" --rate 0 --no-color
  log "/history and /search alone"
  line=$(taskset -c "$LOADGEN_CPU" "$OUT/history_probe" --addr "127.0.0.1:$PORT" --queries "$QUERIES")
  record "{\"label\":\"store-queries-alone\",${line#\{}"
  log "/history and /search while W2 runs"
  loadgen w2-store chat "$PORT" "$PID" --clients 100 --senders 10 --rate 100 --duration 40 \
    --size 64 &
  W2=$!
  sleep 5
  line=$(taskset -c "$LOADGEN_CPU" "$OUT/history_probe" --addr "127.0.0.1:$PORT" --queries "$QUERIES" \
    --name probe2)
  record "{\"label\":\"store-queries-w2\",${line#\{}"
  wait "$W2"
  stop "$PID"
fi

report
