#!/usr/bin/env bash
# bench/irc.sh: our daemon's IRC door against ngircd, the same load generator speaking IRC to
# both, in one run on one machine.
#
#   w1:   100 IRC clients in one channel, each sending 1,000 PRIVMSGs of 64 B flat out:
#         deliveries per second, lost, server CPU per delivery.
#   w3:   1,000 IRC clients join one channel (NICK, USER, 001, JOIN, 366; 200 connecting at once),
#         then 10 of them send 200 PRIVMSGs each flat out: how long the joins take, deliveries/s.
#   idle: IDLE (10,000) idle IRC clients (they answer PINGs): server memory per connection, and one
#         PRIVMSG reaching them all.
#
# Each round starts a fresh server of each kind and runs the workload on ours, then on ngircd
# (the order swaps every round, so neither always runs on a machine its peer just warmed or
# loaded); RUNS rounds, medians, and ours/ngircd. ngircd gets the config bench/run.sh gives it
# (no DNS/ident/PAM, no connection or join limits) and its clients OPER and set user mode +F, as
# in every ngircd figure in BENCHMARKS.md; ours runs as in bench/run.sh plus `--listen-irc`, and
# its clients send nothing but IRC's own registration. Servers are pinned to SERVER_CPU, the load
# generator to LOADGEN_CPU. Loopback only; every run bounded in messages and time.
#
# Linux schedules by autogroup: one session's processes share what one process of another
# session gets, whatever their nice values, so a build at nice 19 in another shell takes as much
# of the server's core as the server does (W1 here: 2.4 M/s with the server at 30% of its core
# beside three such builds, 9.4 M/s at 88% with this session's autogroup at nice -10). Run as root
# under `setsid` with AUTOGROUP_NICE=-10 to give this script's own session (and nothing else)
# that weight; both servers and the load generator get it alike.
#
# Environment (all optional): RUNS=5, WORKLOADS="w1 w3", IDLE=10000, CHAT_SERVER, LOADGEN,
# SERVER_CPU=0, LOADGEN_CPU=1, OUT, CHAT_DB (e.g. none), AUTOGROUP_NICE (e.g. -10).
RUNS=${RUNS:-5}
WORKLOADS=${WORKLOADS:-"w1 w3"}
IDLE=${IDLE:-10000}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
source "$(dirname "$0")/lib.sh"
ulimit -n 20000
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
need ngircd:ngircd
if [ -n "${AUTOGROUP_NICE:-}" ]; then
  echo "$AUTOGROUP_NICE" >/proc/self/autogroup
  log "this session's $(cat /proc/self/autogroup)"
fi
build

# on_ours LABEL ARGS...: a fresh daemon with an IRC listener; one load run through it; stop.
on_ours() {
  local label=$1
  shift
  local irc_port
  irc_port=$(free_port)
  start_chat "$SERVER_CPU" --rate 0 --no-color --max-clients 30000 \
    --listen-irc "127.0.0.1:$irc_port"
  wait_for_port "$irc_port"
  IRC_OPER='' loadgen "$label-ours" irc "$irc_port" "$PID" "$@"
  stop "$PID"
}

# on_ngircd LABEL ARGS...: the same against a fresh ngircd (whose clients OPER, see bench/lib.sh).
on_ngircd() {
  local label=$1
  shift
  start_ngircd "$SERVER_CPU"
  loadgen "$label-ngircd" irc "$PORT" "$PID" "$@"
  stop "$PID"
}

W1=(--clients 100 --messages 1000 --size 64 --drain-timeout 30)
W3=(--clients 1000 --senders 10 --messages 200 --size 64 --setup-timeout 300 --drain-timeout 30)
IDLE_ARGS=(--mode idle --clients "$IDLE" --setup-timeout 600 --settle-timeout 120)
{
  echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
  echo "chat-server: $CHAT_SERVER (work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "ngircd: $(ngircd --version 2>/dev/null | head -1)"
  echo "scheduling: $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
} >"$OUT/versions.txt"
for workload in $WORKLOADS; do
  case $workload in
    w1) args=("${W1[@]}") ;;
    w3) args=("${W3[@]}") ;;
    idle) args=("${IDLE_ARGS[@]}") ;;
    *) echo "bench/irc.sh: unknown workload $workload" >&2; exit 1 ;;
  esac
  for run in $(seq "$RUNS"); do
    log "$workload round $run/$RUNS"
    if [ $((run % 2)) = 1 ]; then
      on_ours "$workload" "${args[@]}"
      on_ngircd "$workload" "${args[@]}"
    else
      on_ngircd "$workload" "${args[@]}"
      on_ours "$workload" "${args[@]}"
    fi
  done
done

cat "$OUT/versions.txt"
python3 - "$RESULTS" <<'PY' | tee "$OUT/table.md"
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
    if v is None:
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.3f}" if v < 100 else f"{v:,.0f}"
def cpu_per_delivery(r):
    server = r.get("server") or {}
    return server["cpu_s"] * 1e9 / r["delivered"] if r.get("delivered") and "cpu_s" in server else None
rows = [
    ("w1", "deliveries/s", lambda r: r.get("deliveries_per_s")),
    ("w1", "lost", lambda r: r.get("lost")),
    ("w1", "server CPU ns per delivery", cpu_per_delivery),
    ("w3", "join time, 1,000 clients (s)", lambda r: r.get("setup_s")),
    ("w3", "deliveries/s", lambda r: r.get("deliveries_per_s")),
    ("w3", "lost", lambda r: r.get("lost")),
    ("idle", "RSS bytes per idle connection", lambda r: (r.get("server") or {}).get("bytes_per_connection")),
    ("idle", "one PRIVMSG reaches all (ms)", lambda r: (r.get("broadcast") or {}).get("all_ms")),
    ("idle", "joins take (s)", lambda r: r.get("connect_s")),
]
print("| workload | figure (median) | ours | ngircd | ours/ngircd | rounds (ours; ngircd) |")
print("|---|---|---|---|---|---|")
for workload, name, f in rows:
    ours, theirs = f"{workload}-ours", f"{workload}-ngircd"
    if ours not in runs and theirs not in runs:
        continue
    a, b = median(ours, f), median(theirs, f)
    ratio = "-" if a is None or not b else f"{a / b:.2f}"
    rounds = lambda label: ", ".join(fmt(f(r)) for r in runs.get(label, []))
    print(f"| {workload.upper()} | {name} | {fmt(a)} | {fmt(b)} | {ratio} | {rounds(ours)}; {rounds(theirs)} |")
PY
log "results: $RESULTS"
