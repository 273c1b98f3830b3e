#!/usr/bin/env python3
# bench/redis_kill_table.py: what bench/redis-kill.sh saw, as markdown: per run, deliveries and
# losses (local and cross-node, before and after Redis was killed), the notices users got, and the
# observers' checks while Redis was down and after it came back. Usage: redis_kill_table.py OUT
import glob
import json
import os
import statistics
import sys


def main(out):
    runs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.startswith("{")]
    observers = []
    for i in range(1, len(runs) + 1):
        try:
            observers.append(json.load(open(os.path.join(out, f"observer-{i}.json"))))
        except (OSError, ValueError):
            observers.append({})
    rows = []

    def row(title, fn):
        cells = []
        for r, o in zip(runs, observers):
            try:
                cells.append(fn(r, o))
            except (KeyError, TypeError, IndexError, StopIteration):
                cells.append("–")
        rows.append(f"| {title} | " + " | ".join(str(c) for c in cells) + " |")

    def watched(r, text):
        return next(w for w in r["watched"] if text in w["text"])

    row("SIGKILL to redis-server, after the senders started", lambda r, o: f"{r['kill']['at_s']:.3f} s")
    row("messages sent (all accepted by the daemons)", lambda r, o: f"{r['sent']:,}")
    row("local deliveries / expected", lambda r, o: f"{r['cross']['local_delivered']:,} / {r['cross']['local_expected']:,}")
    row("local lost", lambda r, o: f"{r['cross']['local_lost']:,}")
    row("cross-node deliveries / expected", lambda r, o: f"{r['cross']['delivered']:,} / {r['cross']['expected']:,}")
    row("cross-node lost", lambda r, o: f"{r['cross']['lost']:,} ({100 * r['cross']['lost'] / r['cross']['expected']:.1f}%)")
    row("local deliveries after the kill", lambda r, o: f"{r['kill']['local_delivered_after']:,}")
    row("cross-node deliveries after the kill", lambda r, o: f"{r['kill']['cross_delivered_after']:,}")
    row("last cross-node delivery", lambda r, o: f"{r['cross']['last_cross_delivery_s']:.3f} s")
    row("told they missed (slow-reader notices)", lambda r, o: f"{r['missed_told']:,}")
    row("load clients told 'degraded' (of 100) / lines",
        lambda r, o: f"{watched(r, 'degraded')['receivers']} / {watched(r, 'degraded')['lines']}")
    row("first 'degraded' notice, after the kill",
        lambda r, o: f"{(watched(r, 'degraded')['first_s'] - r['kill']['at_s']) * 1e3:.0f} ms")
    row("last client told 'degraded', after the kill",
        lambda r, o: f"{(watched(r, 'degraded')['last_first_s'] - r['kill']['at_s']) * 1e3:.0f} ms")
    row("outage: a1's line reached a2 (same daemon)",
        lambda r, o: "yes, %.1f ms" % o["outage_message"]["a2"] if o["outage_message"]["a2"] is not None else "no")
    row("outage: a1's line reached b1 (other daemon)",
        lambda r, o: "yes" if o["outage_message"]["b1"] is not None else "no (expected)")
    row("observers told 'degraded' (a1, a2, b1)",
        lambda r, o: ", ".join(str(o["per_client"][c]["degraded_notices"]) for c in ("a1", "a2", "b1")))
    row("observers told 'whole again' (a1, a2, b1)",
        lambda r, o: ", ".join(str(o["per_client"][c]["whole_notices"]) for c in ("a1", "a2", "b1")))
    row("'whole again' after redis-server restarted (a1, a2, b1)",
        lambda r, o: ", ".join(f"{o['per_client'][c]['whole_after_restart_ms']:.0f} ms" for c in ("a1", "a2", "b1")))
    row("final line a1 -> b1 / b1 -> a1",
        lambda r, o: f"{o['final_a_to_b_ms']} ms / {o['final_b_to_a_ms']} ms" if o["final_crossed"] else "NOT crossed")
    row("/who on b1 afterwards", lambda r, o: o["who_after"])
    print("| | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |")
    print("|---|" + "---|" * len(runs))
    print("\n".join(rows))
    o = next((o for o in observers if o.get("per_client")), None)
    if o:
        print(f"\nNotices, verbatim: `{o['per_client']['a1']['degraded_text']}` / "
              f"`{o['per_client']['a1']['whole_text']}`")


if __name__ == "__main__":
    main(sys.argv[1])
