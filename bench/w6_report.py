#!/usr/bin/env python3
# bench/w6_report.py: the figures of one bench/w6.sh run (JSON line), a readable summary of it
# (--text), or the markdown table of medians over runs (--table w6.jsonl).
#
#   w6_report.py RUN_DIR RUN          one JSON line
#   w6_report.py --text RUN_DIR RUN   the same, readable
#   w6_report.py --table w6.jsonl     medians over runs
import glob
import json
import os
import statistics
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def report(d, run):
    mem = {m["phase"]: m for m in lines(os.path.join(d, "memory.jsonl"))}
    idle = [lines(p)[-1] for p in sorted(glob.glob(os.path.join(d, "idle-*.json"))) if lines(p)]
    cast = lines(os.path.join(d, "cast.json"))[-1]
    sent = cast["sent_ns"]
    clients = sum(r["clients"] for r in idle)
    arrived = sum(r["broadcast"]["arrived"] for r in idle)
    lasts = [r["broadcast"]["last_arrival_ns"] for r in idle if r["broadcast"]["last_arrival_ns"]]
    firsts = [r["broadcast"]["first_arrival_ns"] for r in idle if r["broadcast"]["first_arrival_ns"]]
    by_addr = {}
    for r in idle:
        for a in r["broadcast"]["last_arrival_ns_by_addr"]:
            if a["last_arrival_ns"]:
                by_addr[a["addr"]] = max(by_addr.get(a["addr"], 0), a["last_arrival_ns"])
    before, after = mem["before"], mem["idle"]
    growth = [a - b for a, b in zip(after["daemons_rss_kib"], before["daemons_rss_kib"])]
    metrics = mem.get("after", {}).get("metrics", [])
    warnings = mem.get("after", {}).get("warnings", [])
    out = {
        "run": run,
        "clients": clients,
        "joined": sum(json.load(open(p))["joined"] for p in glob.glob(os.path.join(d, "ready-*"))
                      if not p.endswith(".partial")),
        "join_s_max": max(r["connect_s"] for r in idle),
        "joins_per_s": round(clients / max(r["connect_s"] for r in idle)),
        "settle_s_max": max(r["settle_s"] for r in idle),
        "arrived": arrived,
        "broadcast_all_ms": round((max(lasts) - sent) / 1e6, 2) if lasts and arrived == clients else None,
        "broadcast_last_seen_ms": round((max(lasts) - sent) / 1e6, 2) if lasts else None,
        "broadcast_first_ms": round((min(firsts) - sent) / 1e6, 2) if firsts else None,
        "broadcast_p50_ms_per_process": [r["broadcast"]["p50_ms"] for r in idle],
        "broadcast_all_ms_per_process": [r["broadcast"]["all_ms"] for r in idle],
        "broadcast_last_ms_by_daemon": {a: round((t - sent) / 1e6, 2) for a, t in sorted(by_addr.items())},
        "cast_join_ms": cast["join_ms"],
        "daemons_rss_kib_before": before["daemons_rss_kib"],
        "daemons_rss_kib_idle": after["daemons_rss_kib"],
        "daemons_rss_growth_kib": growth,
        "daemon_bytes_per_connection": round(sum(growth) * 1024 / clients),
        "daemons_fds": after.get("daemons_fds"),
        "redis_rss_kib_before": before["redis_rss_kib"],
        "redis_rss_kib_idle": after["redis_rss_kib"],
        "loadgen_rss_kib": after.get("loadgen_rss_kib"),
        "kernel_slab_growth_kib": after["slab_kib"] - before["slab_kib"],
        "kernel_sunreclaim_growth_kib": after["sunreclaim_kib"] - before["sunreclaim_kib"],
        "tcp_sockets_growth": after.get("tcp_alloc", 0) - before.get("tcp_alloc", 0),
        "tcp_mem_pages_growth": after.get("tcp_mem_pages", 0) - before.get("tcp_mem_pages", 0),
        "idle_cpu": mem.get("idle-cpu"),
        "room_users_by_daemon": [m.get("chat_room_users") for m in metrics],
        "users_by_daemon": [m.get("chat_users") for m in metrics],
        "backplane_dropped": [m.get("chat_backplane_dropped_total") for m in metrics],
        "metrics_scrape_s": [m.get("scrape_s") for m in metrics],
        "nodes_declared_silent": [w["silent"] for w in warnings],
        "name_claim_warnings": [w["claims"] for w in warnings],
        "lines_received": sum(r["lines_received"] for r in idle),
        "disconnected": sum(r["disconnected"] for r in idle),
        "missed_told": sum(r["missed_told"] for r in idle),
        "watched": {w["text"]: {"lines": sum(x["lines"] for r in idle for x in r.get("watched", []) if x["text"] == w["text"]),
                                "connections": sum(x["connections"] for r in idle for x in r.get("watched", []) if x["text"] == w["text"])}
                    for w in (idle[0].get("watched") or [])},
    }
    return out


def text(r):
    mib = lambda kib: f"{kib / 1024:.0f} MiB"
    s = [
        f"W6 run {r['run']}: {r['joined']:,} of {r['clients']:,} joined in {r['join_s_max']:.1f} s "
        f"({r['joins_per_s']:,}/s), settled {r['settle_s_max']:.1f} s more",
        f"  daemons' RSS {sum(r['daemons_rss_kib_before'])} -> {sum(r['daemons_rss_kib_idle'])} KiB "
        f"(growth per daemon {r['daemons_rss_growth_kib']}) = {r['daemon_bytes_per_connection']} B per connection",
        f"  redis-server RSS {mib(r['redis_rss_kib_before'])} -> {mib(r['redis_rss_kib_idle'])}; "
        f"load generators {mib(sum(r['loadgen_rss_kib'] or [0]))}; kernel slab +{mib(r['kernel_slab_growth_kib'])} "
        f"for +{r['tcp_sockets_growth']:,} TCP sockets, TCP buffers +{r['tcp_mem_pages_growth'] * 4} KiB",
        f"  broadcast: {r['arrived']:,} of {r['clients']:,} got it; all in {r['broadcast_all_ms']} ms "
        f"(first {r['broadcast_first_ms']} ms); last per daemon {r['broadcast_last_ms_by_daemon']}",
        f"  after the broadcast, room users per daemon {r['room_users_by_daemon']} (local "
        f"{r['users_by_daemon']}), backplane dropped {r['backplane_dropped']}; /metrics took "
        f"{r['metrics_scrape_s']} s",
        f"  'node went silent' per daemon {r['nodes_declared_silent']}, name claim warnings "
        f"{r['name_claim_warnings']}",
        f"  idle 10 s: daemons CPU {r['idle_cpu']['daemons_cpu_s']} s, redis {r['idle_cpu']['redis_cpu_s']} s",
        f"  lines received while idle {r['lines_received']:,}; disconnected {r['disconnected']}, "
        f"told missed {r['missed_told']}; notices {r['watched']}",
    ]
    return "\n".join(s)


def table(path):
    runs = lines(path)
    med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None
    rng = lambda xs: f"{min(xs)}-{max(xs)}" if len(xs) > 1 else ""

    def row(title, values, fmt):
        m = med(values)
        spread = [fmt(v) for v in values if v is not None]
        print(f"| {title} | {fmt(m) if m is not None else '–'} | {', '.join(spread)} |")

    n = f"{runs[0]['clients']:,}" if runs else "?"
    print(f"Medians of {len(runs)} run(s).\n")
    print("| metric | median | runs |")
    print("|---|---|---|")
    row(f"clients joined (of {n})", [r["joined"] for r in runs], lambda v: f"{v:,.0f}")
    row("join time, all clients (slowest load generator)", [r["join_s_max"] for r in runs], lambda v: f"{v:.1f} s")
    row("then until no line arrived for 3 s", [r["settle_s_max"] for r in runs], lambda v: f"{v:.1f} s")
    row(f"daemons' RSS growth per connection (sum over daemons / {n})",
        [r["daemon_bytes_per_connection"] for r in runs], lambda v: f"{v:,.0f} B")
    row(f"daemons' RSS with {n} idle (sum)", [sum(r["daemons_rss_kib_idle"]) for r in runs],
        lambda v: f"{v / 1024:.0f} MiB")
    row("redis-server RSS, before the clients", [r["redis_rss_kib_before"] for r in runs], lambda v: f"{v / 1024:.1f} MiB")
    row(f"redis-server RSS, {n} idle", [r["redis_rss_kib_idle"] for r in runs], lambda v: f"{v / 1024:.1f} MiB")
    row("kernel slab growth (both ends of every connection)", [r["kernel_slab_growth_kib"] for r in runs],
        lambda v: f"{v / 1024:.0f} MiB")
    row("load generators' RSS (sum)", [sum(r["loadgen_rss_kib"] or [0]) for r in runs],
        lambda v: f"{v / 1024:.0f} MiB")
    row(f"one broadcast reaches all {n}", [r["broadcast_all_ms"] for r in runs], lambda v: f"{v:,.0f} ms")
    row("... the first of them", [r["broadcast_first_ms"] for r in runs], lambda v: f"{v:.1f} ms")
    row("... half of them (median of the processes' p50)",
        [statistics.median(r["broadcast_p50_ms_per_process"]) for r in runs], lambda v: f"{v:,.0f} ms")
    row("idle: daemons' CPU per 10 s (sum)", [sum(r["idle_cpu"]["daemons_cpu_s"]) for r in runs],
        lambda v: f"{v:.2f} s")
    row("idle: redis-server CPU per 10 s", [r["idle_cpu"]["redis_cpu_s"] for r in runs], lambda v: f"{v:.2f} s")
    row("'node went silent' sweeps (sum over daemons)", [sum(r["nodes_declared_silent"]) for r in runs],
        lambda v: f"{v:.0f}")
    row(f"fewest users in the room a daemon sees afterwards (of {n})",
        [min(r["room_users_by_daemon"]) for r in runs], lambda v: f"{v:,.0f}")
    print("\nRoom size per daemon after the broadcast: "
          + "; ".join(", ".join(f"{u:,}" for u in r["room_users_by_daemon"]) for r in runs))
    print("GET /metrics took (s): " + "; ".join(", ".join(str(x) for x in r["metrics_scrape_s"]) for r in runs))

if __name__ == "__main__":
    if sys.argv[1] == "--text":
        print(text(report(sys.argv[2], int(sys.argv[3]))))
    elif sys.argv[1] == "--table":
        table(sys.argv[2])
    else:
        print(json.dumps(report(sys.argv[1], int(sys.argv[2]))))
