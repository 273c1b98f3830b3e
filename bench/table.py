#!/usr/bin/env python3
# bench/table.py: turns the load generator's JSON lines (one per run) into the markdown table of
# BENCHMARKS.md: medians per workload and server, ratios against the better peer measured in the
# same run, and each target's verdict. Usage: python3 bench/table.py results.jsonl
import json
import statistics
import sys
from collections import defaultdict

PEERS = ("redis", "irc")
NAMES = {"chat": "ours", "redis": "Redis", "irc": "ngircd"}


def load(path):
    runs = defaultdict(list)
    bench = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("mode") == "parse-bench":
                bench = r
                continue
            runs[(r["label"], r["protocol"])].append(r)
    return runs, bench


def get(r, path):
    if path == "cpu_ns_per_delivery":
        cpu, delivered = get(r, "server.cpu_s"), r.get("delivered")
        return cpu / delivered * 1e9 if cpu is not None and delivered else None
    for key in path.split("."):
        if r is None:
            return None
        r = r.get(key)
    return r


def median(runs, key, path):
    values = [get(r, path) for r in runs.get(key, [])]
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(value, unit=""):
    if value is None:
        return "–"
    if unit == "/s":
        return f"{value / 1e6:.2f} M/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "KiB":
        return f"{value / 1024:.0f} MiB" if value >= 10240 else f"{value:.0f} KiB"
    if unit == "B":
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value:.2f} s"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def row(runs, label, title, path, unit="", scale=1.0, peers=True):
    cells = []
    for proto in ("chat",) + (PEERS if peers else ()):
        v = median(runs, (label, proto), path)
        cells.append(fmt(None if v is None else v * scale, unit))
    while len(cells) < 3:
        cells.append("–")
    return f"| {label.upper()} | {title} | " + " | ".join(cells) + " |"


def count(runs, label, proto):
    return len(runs.get((label, proto), []))


def main():
    runs, bench = load(sys.argv[1])
    out = [
        "| workload | metric (median) | ours | Redis | ngircd |",
        "|---|---|---|---|---|",
    ]
    verdicts = []

    def best_peer(label, path, higher=True):
        values = [median(runs, (label, p), path) for p in PEERS]
        values = [v for v in values if v is not None]
        if not values:
            return None
        return max(values) if higher else min(values)

    if ("w1", "chat") in runs:
        out.append(row(runs, "w1", "deliveries/s", "deliveries_per_s", "/s"))
        out.append(row(runs, "w1", "lost (of 9.9M; Redis 10M)", "lost"))
        out.append(row(runs, "w1", "server CPU", "server.cpu_s", "s"))
        out.append(row(runs, "w1", "server CPU ns per delivery", "cpu_ns_per_delivery"))
        out.append(row(runs, "w1", "server peak RSS", "server.peak_rss_kib", "KiB"))
        ours = median(runs, ("w1", "chat"), "deliveries_per_s")
        peer = best_peer("w1", "deliveries_per_s")
        lost = max((r["lost"] for r in runs[("w1", "chat")]), default=None)
        if ours and peer:
            ok = ours >= 1.5 * peer and lost == 0
            verdicts.append(
                f"W1 throughput >= 1.5x best peer, zero loss: {ours / peer:.2f}x, "
                f"max lost {lost} -> {'MET' if ok else 'NOT MET'}"
            )
    if ("w2", "chat") in runs:
        for title, path in (
            ("latency p50", "latency_us.p50"),
            ("latency p99", "latency_us.p99"),
            ("latency p99.9", "latency_us.p999"),
            ("latency max", "latency_us.max"),
        ):
            out.append(row(runs, "w2", title, path, "ms", 1e-3))
        out.append(row(runs, "w2", "lost", "lost"))
        p99 = median(runs, ("w2", "chat"), "latency_us.p99")
        p999 = median(runs, ("w2", "chat"), "latency_us.p999")
        redis_p99 = median(runs, ("w2", "redis"), "latency_us.p99")
        if p99 is not None and p999 is not None and redis_p99 is not None:
            ok = p99 < redis_p99 and p99 < 1000 and p999 < 5000
            verdicts.append(
                f"W2 p99 < Redis ({redis_p99 / 1e3:.2f} ms) and < 1 ms, p99.9 < 5 ms: "
                f"p99 {p99 / 1e3:.2f} ms, p99.9 {p999 / 1e3:.2f} ms -> {'MET' if ok else 'NOT MET'}"
            )
    if ("w3", "chat") in runs:
        out.append(row(runs, "w3", "deliveries/s", "deliveries_per_s", "/s"))
        out.append(row(runs, "w3", "lost (of 2.0M)", "lost"))
        out.append(row(runs, "w3", "server CPU ns per delivery", "cpu_ns_per_delivery"))
        out.append(row(runs, "w3", "join time, 1,000 clients", "setup_s", "s"))
        out.append(row(runs, "w3", "server peak RSS", "server.peak_rss_kib", "KiB"))
        ours = median(runs, ("w3", "chat"), "deliveries_per_s")
        peer = best_peer("w3", "deliveries_per_s")
        lost = max((r["lost"] for r in runs[("w3", "chat")]), default=None)
        if ours and peer:
            ok = ours >= peer and lost == 0
            verdicts.append(
                f"W3 throughput >= best peer, zero loss: {ours / peer:.2f}x, max lost {lost} "
                f"-> {'MET' if ok else 'NOT MET'}"
            )
    if ("w4", "chat") in runs:
        out.append(row(runs, "w4", "server RSS per idle connection", "server.bytes_per_connection", "B", peers=False))
        out.append(row(runs, "w4", "one broadcast reaches all 19,000", "broadcast.all_ms", "ms", peers=False))
        out.append(row(runs, "w4", "19,000 joins take", "connect_s", "s", peers=False))
        out.append(row(runs, "w4", "server RSS with 19,000 idle", "server.rss_kib_after", "KiB", peers=False))
        per = median(runs, ("w4", "chat"), "server.bytes_per_connection")
        reach = median(runs, ("w4", "chat"), "broadcast.all_ms")
        if per is not None and reach is not None:
            ok = per <= 4096 and reach < 500
            verdicts.append(
                f"W4 <= 4 KiB per idle connection, broadcast to all < 500 ms: {per / 1024:.2f} KiB, "
                f"{reach:.0f} ms -> {'MET' if ok else 'NOT MET'}"
            )
    if ("w5", "chat") in runs:
        out.append(row(runs, "w5", "others' deliveries/s", "deliveries_per_s", "/s"))
        out.append(row(runs, "w5", "others lost", "lost"))
        out.append(row(runs, "w5", "server peak RSS", "server.peak_rss_kib", "KiB"))
        out.append(row(runs, "w5", "slow reader got (of 100k)", "slow.tokens_received"))
        out.append(row(runs, "w5", "slow reader told it missed", "slow.missed_told"))
        w1 = median(runs, ("w1", "chat"), "deliveries_per_s")
        w5 = median(runs, ("w5", "chat"), "deliveries_per_s")
        told = [get(r, "slow.first_notice") for r in runs[("w5", "chat")]]
        ended = {p: [get(r, "slow.ended") for r in runs.get(("w5", p), [])] for p in PEERS}
        if w1 and w5:
            told_ok = all(t for t in told)
            verdicts.append(
                f"W5 others keep >= 90% of W1 throughput, slow reader told what it missed: "
                f"{100 * w5 / w1:.0f}%, told: {told[0] if told else '–'!r} "
                f"-> {'MET' if w5 >= 0.9 * w1 and told_ok else 'NOT MET'} "
                f"(peers' slow reader: Redis {ended['redis'][:1]}, ngircd {ended['irc'][:1]})"
            )
    if ("w7", "chat") in runs:
        out.append(row(runs, "w7", "delivered (of 540,000; Redis 600,000)", "delivered"))
        out.append(row(runs, "w7", "lost", "lost"))
        out.append(row(runs, "w7", "misrouted (outside the room)", "misrouted"))
        out.append(row(runs, "w7", "server CPU", "server.cpu_s", "s"))
        out.append(row(runs, "w7", "server CPU ns per delivery", "cpu_ns_per_delivery"))
        out.append(row(runs, "w7", "latency p50", "latency_us.p50", "ms", 1e-3))
        out.append(row(runs, "w7", "latency p99", "latency_us.p99", "ms", 1e-3))
        out.append(row(runs, "w7", "latency p99.9", "latency_us.p999", "ms", 1e-3))
        out.append(row(runs, "w7", "rooms that lost something (of 1,000)", "rooms.with_loss"))
        out.append(row(runs, "w7", "server RSS per connection (joined)", "server_bytes_per_client", "B"))
        out.append(row(runs, "w7", "server peak RSS", "server.peak_rss_kib", "KiB"))
        out.append(row(runs, "w7", "join time, 10,000 clients", "setup_s", "s"))
        cpu = median(runs, ("w7", "chat"), "cpu_ns_per_delivery")
        peer_cpu = best_peer("w7", "cpu_ns_per_delivery", higher=False)
        p99 = median(runs, ("w7", "chat"), "latency_us.p99")
        peer_p99 = best_peer("w7", "latency_us.p99", higher=False)
        if cpu and peer_cpu:
            verdicts.append(
                f"W7 server CPU per delivery <= half the better peer's ({peer_cpu:.0f} ns): "
                f"{cpu:.0f} ns ({cpu / peer_cpu:.2f}x) -> {'MET' if cpu <= peer_cpu / 2 else 'NOT MET'}"
            )
        if p99 and peer_p99:
            verdicts.append(
                f"W7 p99 below both peers' (best {peer_p99 / 1e3:.2f} ms): {p99 / 1e3:.2f} ms "
                f"-> {'MET' if p99 < peer_p99 else 'NOT MET'}"
            )
    print("\n".join(out))
    counts = sorted({count(runs, label, p) for (label, p) in runs})
    print(f"\nRuns per cell: {', '.join(map(str, counts))}. Latency is kernel receive time "
          "minus send time (see BENCHMARKS.md).")
    if bench:
        print(f"Load generator receive path: {bench['lines_per_s'] / 1e6:.1f} M lines/s on one core "
              f"({bench['ns_per_line']} ns per decorated line).")
    if verdicts:
        print()
        for v in verdicts:
            print(f"- {v}")


if __name__ == "__main__":
    main()
