#!/usr/bin/env python3
# bench/observer.py: a few named chat clients that stay connected through bench/redis-kill.sh,
# log every line they receive with its CLOCK_MONOTONIC time, and check what users see while Redis
# is down and after it is back. Loopback only; bounded by --timeout.
#
#   observer.py --dir OUT --client a1=127.0.0.1:PORT_A --client a2=127.0.0.1:PORT_A \
#               --client b1=127.0.0.1:PORT_B [--timeout 300]
#
# The first client named a* is the local sender, the first named b* the remote one. Steps, driven
# by files the script creates in --dir:
#   1. join all clients, then create observer-ready
#   2. when `outage` exists (Redis is down): a1 sends an outage message; after 3 s, note who got it
#      (a2 must: the daemon still serves its own users; b1 cannot), then create outage-checked
#   3. when every client has seen "whole again" (Redis is back): a1 and b1 each send a final line
#      and b1 asks /who; wait until the finals crossed (at most 15 s)
#   4. print one JSON summary on stdout and exit
import argparse
import json
import os
import select
import socket
import sys
import time

DEGRADED = "The room is degraded"
WHOLE = "The room is whole again"


def now():
    return time.monotonic_ns()


class Client:
    def __init__(self, label, addr, prefix):
        host, port = addr.rsplit(":", 1)
        if not host.startswith("127."):
            raise SystemExit(f"observer: {addr} is not a loopback address")
        self.label = label
        self.name = f"{prefix}{label}"
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setblocking(False)
        self.buf = b""
        self.lines = []  # (t_ns, text)

    def send(self, text):
        self.sock.setblocking(True)
        self.sock.sendall(text.encode() + b"\n")
        self.sock.setblocking(False)

    def pump(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        t = now()
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.lines.append((t, line.decode("utf-8", "replace").rstrip("\r")))
        return True

    def first(self, text, after=0):
        for t, line in self.lines:
            if t >= after and text in line:
                return t, line
        return None

    def count(self, text):
        return sum(1 for _, line in self.lines if text in line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--client", action="append", required=True, help="LABEL=HOST:PORT")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--prefix", default="obs")
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout
    d = args.dir
    clients = [Client(*c.split("=", 1), args.prefix) for c in args.client]
    local = next(c for c in clients if c.label.startswith("a"))
    remote = next(c for c in clients if c.label.startswith("b"))
    locals_ = [c for c in clients if c.label.startswith("a")]
    alive = {c.label: True for c in clients}

    def pump(seconds):
        end = min(time.monotonic() + seconds, deadline)
        while time.monotonic() < end:
            socks = [c.sock for c in clients if alive[c.label]]
            ready, _, _ = select.select(socks, [], [], 0.05)
            for c in clients:
                if c.sock in ready and not c.pump():
                    alive[c.label] = False

    def wait_for(cond, seconds):
        end = min(time.monotonic() + seconds, deadline)
        while time.monotonic() < end:
            if cond():
                return True
            pump(0.1)
        return cond()

    for c in clients:
        c.send(c.name)
    if not wait_for(lambda: all(c.first(f"Welcome, {c.name}!") for c in clients), 20):
        raise SystemExit("observer: not every client was welcomed")
    open(os.path.join(d, "observer-ready"), "w").close()

    summary = {"clients": {c.label: c.name for c in clients}}
    # Step 2: while Redis is down.
    wait_for(lambda: os.path.exists(os.path.join(d, "outage")), args.timeout)
    outage_text = f"outage-check from {local.name}"
    sent = now()
    local.send(outage_text)
    pump(3)
    summary["outage_message"] = {
        c.label: (lambda hit: round((hit[0] - sent) / 1e6, 2) if hit else None)(c.first(outage_text, sent))
        for c in clients if c is not local
    }
    open(os.path.join(d, "outage-checked"), "w").close()

    # Step 3: Redis is back.
    whole = wait_for(lambda: all(c.first(WHOLE) for c in clients), args.timeout)
    restarted = None
    try:
        restarted = int(open(os.path.join(d, "redis-restarted")).read().strip())
    except (OSError, ValueError):
        pass
    pump(1.5)
    final_a = f"final from {local.name}"
    final_b = f"final from {remote.name}"
    sent_final = now()
    local.send(final_a)
    remote.send(final_b)
    remote.send("/who")
    crossed = wait_for(
        lambda: remote.first(final_a, sent_final) and all(c.first(final_b, sent_final) for c in locals_),
        15,
    )
    pump(0.5)

    def at(hit, base):
        return round((hit[0] - base) / 1e6, 2) if hit and base else None

    summary.update({
        "whole_again_seen_by_all": whole,
        "final_crossed": bool(crossed),
        "final_a_to_b_ms": at(remote.first(final_a, sent_final), sent_final),
        "final_b_to_a_ms": at(local.first(final_b, sent_final), sent_final),
        "who_after": next((line for t, line in remote.lines if t >= sent_final and "online" in line), None),
        "per_client": {},
    })
    for c in clients:
        deg = c.first(DEGRADED)
        wh = c.first(WHOLE)
        summary["per_client"][c.label] = {
            "degraded_notices": c.count(DEGRADED),
            "whole_notices": c.count(WHOLE),
            "degraded_text": deg[1] if deg else None,
            "whole_text": wh[1] if wh else None,
            "whole_after_restart_ms": at(wh, restarted) if restarted else None,
            "connected": alive[c.label],
        }
    with open(os.path.join(d, "observer-lines.jsonl"), "w") as f:
        for c in clients:
            for t, line in c.lines:
                f.write(json.dumps({"client": c.label, "t_ns": t, "line": line}) + "\n")
    for c in clients:
        try:
            c.send("/quit")
        except OSError:
            pass
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
