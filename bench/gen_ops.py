#!/usr/bin/env python3
"""Writes a long, realistic SPEC D op file for `turnstile gate`.

Usage: bench/gen_ops.py COUNT [SEED] > ops.jsonl

A few pools of capacity 64 with a few hundred clients that admit (often
resuming, sometimes switching episodes or replaying a request), heartbeat
and release, with time moving forward in small steps and now and then a
little backwards. Deterministic for a seed.
"""
import json
import random
import sys


def main():
    count = int(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    pools = ["p0", "p1", "p2", "p3"]
    out = sys.stdout
    for pool in pools:
        out.write(json.dumps({"op": "config", "pool": pool, "capacity": 64, "ttl": 30000, "grace": 15000},
                             separators=(",", ":")) + "\n")
    now = 0
    tokens = {}
    requests = {}
    for i in range(count - len(pools)):
        now += rng.randint(0, 40)
        pool = rng.choice(pools)
        client = "c%d" % rng.randint(0, 299)
        key = (pool, client)
        clock = max(0, now - rng.randint(0, 500)) if rng.random() < 0.05 else now
        roll = rng.random()
        if roll < 0.6 or key not in tokens:
            if key in requests and rng.random() < 0.1:
                request, episode, issued = requests[key]
            else:
                request = "r%d" % i
                episode = "tt%d:1:%d" % (rng.randint(1, 3), rng.randint(1, 3))
                issued = clock
                requests[key] = (request, episode, issued)
            op = {"op": "admit", "pool": pool, "client": client, "episode": episode,
                  "request": request, "issued_at": issued, "now": clock}
            tokens[key] = str(rng.randint(1, i + 1))
        elif roll < 0.95:
            op = {"op": "heartbeat", "pool": pool, "client": client, "token": tokens[key], "now": clock}
        else:
            op = {"op": "release", "pool": pool, "client": client, "token": tokens[key], "now": clock}
        out.write(json.dumps(op, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
