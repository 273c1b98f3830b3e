#!/usr/bin/env python3
# bench/nodes_table.py: the markdown table of bench/nodes.sh (W1 on one daemon, on one daemon with
# the Redis backplane, and across two daemons): medians per set-up, and the two-node figures as a
# ratio of the single-node ones. Usage: python3 bench/nodes_table.py results.jsonl
import json
import statistics
import sys
from collections import defaultdict

LABELS = [("w1-1node", "1 node"), ("w1-1node-redis", "1 node + Redis"), ("w1-2nodes", "2 nodes")]


def get(r, path):
    for key in path.split("."):
        if r is None:
            return None
        r = r.get(key)
    return r


def total_cpu(r, who):
    """CPU seconds of `server` or `backplane` over the run plus what it spent after the last
    delivery (--cpu-tail), or None."""
    cpu = get(r, f"{who}.cpu_s")
    if cpu is None:
        return None
    return cpu + (get(r, f"{who}.cpu_tail_s") or 0.0)


def derived(r, what):
    delivered = r.get("delivered") or 0
    daemons = total_cpu(r, "server")
    redis = total_cpu(r, "backplane") or 0.0
    if what == "ns_daemons":
        return daemons / delivered * 1e9 if delivered and daemons is not None else None
    if what == "ns_all":
        return (daemons + redis) / delivered * 1e9 if delivered and daemons is not None else None
    if what == "cpu_daemons":
        return daemons
    if what == "cpu_redis":
        return total_cpu(r, "backplane")
    raise KeyError(what)


ROWS = [
    ("deliveries/s", "deliveries_per_s", "M/s"),
    ("delivered (of expected)", "delivered", "int"),
    ("lost", "lost", "int"),
    ("lost, cross-node", "cross.lost", "int"),
    ("lost, local", "cross.local_lost", "int"),
    ("latency p50", "latency_us.p50", "ms"),
    ("latency p99", "latency_us.p99", "ms"),
    ("latency p50 local / cross-node", ("cross.latency_local_us.p50", "cross.latency_cross_us.p50"), "ms2"),
    ("latency p99 local / cross-node", ("cross.latency_local_us.p99", "cross.latency_cross_us.p99"), "ms2"),
    ("send phase", "send_s", "s"),
    ("first send to last delivery", "window_s", "s"),
    ("daemons' CPU, first send to last delivery", "server.cpu_s", "s"),
    ("daemons' CPU after the last delivery", "server.cpu_tail_s", "s"),
    ("redis-server CPU, in all", "@cpu_redis", "s"),
    ("CPU ns per delivery, daemons (in all)", "@ns_daemons", "ns"),
    ("CPU ns per delivery, daemons + Redis (in all)", "@ns_all", "ns"),
    ("daemons' peak RSS (sum)", "server.peak_rss_kib", "KiB"),
    ("redis-server peak RSS", "backplane.peak_rss_kib", "KiB"),
    ("load generator CPU share", "loadgen.cpu_util", "pct"),
]


def value(r, path):
    if isinstance(path, tuple):
        return tuple(value(r, p) for p in path)
    if path.startswith("@"):
        return derived(r, path[1:])
    return get(r, path)


def med(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "M/s":
        return f"{v / 1e6:.2f} M/s"
    if unit == "int":
        return f"{v:,.0f}"
    if unit in ("ms",):
        return f"{v / 1e3:.2f} ms"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "ns":
        return f"{v:.0f}"
    if unit == "KiB":
        return f"{v / 1024:.1f} MiB" if v >= 10240 else f"{v:.0f} KiB"
    if unit == "pct":
        return f"{v * 100:.0f}%"
    return str(v)


def main(path):
    runs = defaultdict(list)
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            runs[r["label"]].append(r)
    labels = [(l, n) for l, n in LABELS if runs.get(l)]
    counts = ", ".join(f"{n}: {len(runs[l])}" for l, n in labels)
    print(f"Medians of runs ({counts}).\n")
    print("| metric (median) | " + " | ".join(n for _, n in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for title, path, unit in ROWS:
        cells = []
        for label, _ in labels:
            vals = [value(r, path) for r in runs[label]]
            if unit == "ms2":
                a = med([v[0] for v in vals])
                b = med([v[1] for v in vals])
                cells.append("–" if a is None else f"{fmt(a, 'ms')} / {fmt(b, 'ms')}")
            else:
                cells.append(fmt(med(vals), unit))
        if all(c == "–" for c in cells):
            continue
        print(f"| {title} | " + " | ".join(cells) + " |")
    one, two = runs.get("w1-1node"), runs.get("w1-2nodes")
    if one and two:
        a = med([r["deliveries_per_s"] for r in one])
        b = med([r["deliveries_per_s"] for r in two])
        pairs = [t["deliveries_per_s"] / o["deliveries_per_s"] for o, t in zip(one, two)]
        na = med([derived(r, "ns_daemons") for r in one])
        nb = med([derived(r, "ns_all") for r in two])
        print(f"\nTwo nodes / one node, deliveries/s: {b / a:.2f} (ratio of medians; per round "
              + ", ".join(f"{p:.2f}" for p in pairs) + ")")
        print(f"CPU per delivery, two nodes (daemons + Redis) / one node: {nb / na:.2f}")


def last(path):
    lines = [l for l in open(path, encoding="utf-8") if l.startswith("{")]
    if not lines:
        return
    r = json.loads(lines[-1])
    c = r.get("cross") or {}
    split = f" (cross-node {c['lost']}, local {c['local_lost']})" if c else ""
    print(f"  {r['label']}: {r['deliveries_per_s'] / 1e6:.2f} M/s, lost {r['lost']}{split}, "
          f"p50 {r['latency_us']['p50'] / 1e3:.2f} ms, daemons CPU {get(r, 'server.cpu_s')} s")


if __name__ == "__main__":
    if sys.argv[1] == "--last":
        last(sys.argv[2])
    else:
        main(sys.argv[1])
