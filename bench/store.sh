#!/usr/bin/env bash
# bench/store.sh: what keeping history costs, and how the store holds up when it is big.
#
#   1. W1 (100 clients x 1,000 messages of 64 B flat out, all in #lobby) with the default store
#      on a file and with --db :memory:, the two alternating round by round (RUNS rounds, a fresh
#      server each): deliveries/s, lost, server CPU per delivery; the store's batch size
#      (messages written / transactions) and, on file, the bytes the daemon wrote per message
#      (/proc/PID/io write_bytes, WAL and checkpoints included) once every message is stored.
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
# Environment (all optional): RUNS=3, SIZES="1000000 10000000", QUERIES=200,
# FILL_DIR=target/bench/history-db, SERVER_CPU=0, LOADGEN_CPU=1, CHAT_SERVER, LOADGEN, OUT.
RUNS=${RUNS:-3}
SIZES=${SIZES:-"1000000 10000000"}
QUERIES=${QUERIES:-200}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
FILL_DIR=${FILL_DIR:-target/bench/history-db}
source "$(dirname "$0")/lib.sh"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
mkdir -p "$FILL_DIR"

need curl:curl
build
log "building the history tools (release)"
cargo build --release --example history_fill --example history_probe -p chat
cp target/release/examples/history_fill target/release/examples/history_probe "$OUT/"

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
record() { echo "$1" >>"$RESULTS"; echo "$1" >&2; }

# w1 STORE: one W1 run on a fresh server whose --db is STORE ("file" or ":memory:").
w1() {
  local store=$1 db=":memory:"
  [ "$store" = file ] && db="$OUT/w1-$RANDOM.db"
  local mport
  mport=$(free_port)
  CHAT_DB=$db start_chat "$SERVER_CPU" --rate 0 --no-color --metrics "127.0.0.1:$mport"
  loadgen "w1-$store" chat "$PORT" "$PID" --clients 100 --messages 1000 --size 64
  local tries=600
  while [ "$(metric "$mport" chat_store_written_total)" -lt 100000 ] && [ $tries -gt 0 ]; do
    sleep 0.1
    tries=$((tries - 1))
  done
  local written batches dropped io
  written=$(metric "$mport" chat_store_written_total)
  batches=$(metric "$mport" chat_store_batches_total)
  dropped=$(metric "$mport" chat_store_dropped_total)
  io=$(awk '/^write_bytes:/ {print $2}' "/proc/$PID/io")
  record "{\"label\":\"store-w1-$store\",\"written\":$written,\"batches\":$batches,\"dropped\":$dropped,\"write_bytes\":$io}"
  stop "$PID"
  [ "$store" = file ] && rm -f "$db" "$db-wal" "$db-shm"
  return 0
}

for run in $(seq "$RUNS"); do
  log "W1 round $run/$RUNS"
  w1 file
  w1 :memory:
done

largest=""
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
  log "restart on $largest, $run/$RUNS"
  line=$(taskset -c "$LOADGEN_CPU" "$OUT/history_probe" --server "$CHAT_SERVER" --db "$largest")
  record "{\"label\":\"store-restart\",${line#\{}"
done

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

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs): return statistics.median(xs) if xs else float("nan")
def runs(label): return [r for r in rows if r.get("label") == label]
print("| figure | file (default) | :memory: | file / memory |")
print("|---|---|---|---|")
f, m = runs("w1-file"), runs("w1-:memory:")
fd, md = med([r["deliveries_per_s"] for r in f]), med([r["deliveries_per_s"] for r in m])
print(f"| W1 deliveries/s (median of {len(f)}) | {fd:,.0f} | {md:,.0f} | {fd / md:.2f} |")
fc = med([r["server"]["cpu_s"] * 1e9 / r["delivered"] for r in f])
mc = med([r["server"]["cpu_s"] * 1e9 / r["delivered"] for r in m])
print(f"| W1 server CPU per delivery | {fc:.0f} ns | {mc:.0f} ns | {fc / mc:.2f} |")
print(f"| W1 lost | {sum(r['lost'] for r in f)} | {sum(r['lost'] for r in m)} | |")
sf, sm = runs("store-w1-file"), runs("store-w1-:memory:")
bf = med([r["written"] / max(r["batches"], 1) for r in sf])
bm = med([r["written"] / max(r["batches"], 1) for r in sm])
print(f"| store: messages per transaction | {bf:,.0f} | {bm:,.0f} | |")
print(f"| store: messages not stored | {sum(r['dropped'] + 100000 - r['written'] for r in sf)} | {sum(r['dropped'] + 100000 - r['written'] for r in sm)} | |")
wb = med([r["write_bytes"] / max(r["written"], 1) for r in sf])
print(f"| store: bytes written per message (WAL and checkpoints) | {wb:,.0f} | - | |")
print()
print("| database | messages | file bytes | bytes per message |")
print("|---|---|---|---|")
for r in runs("store-size"):
    print(f"| history-{r['messages']}.db | {r['messages']:,} | {r['file_bytes']:,} | {r['file_bytes'] / r['messages']:.0f} |")
print()
rs = runs("store-restart")
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
