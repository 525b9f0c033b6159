#!/usr/bin/python3
"""How the executor's ways of running compare, from inside one process.

In auto mode the executor times its first runs in each way it can run —
kernel by kernel, the row bands, the inter-op workers — alternating run by
run, and keeps the fastest (`tuned_ms` in `weft bench --json`).  Adjacent
runs of one process see the same machine load, so their ratio is steadier
than two processes' times on this shared machine.  This runs each row of
the issue's table in ROUNDS processes and prints, per way, the best time and
the median ratio to kernel by kernel.

    bench/modes.py [--binary build/weft] [--rows 0,1,2,3,4] [--rounds 5] [--threads 2]
"""
import argparse, statistics

from compare_pytorch import ROWS, weft


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/weft")
    ap.add_argument("--rows", default="0,1,2,3,4")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    for row in (int(r) for r in a.rows.split(",")):
        runs = [weft(a.binary, *ROWS[row], 1, a.threads)["tuned_ms"] for _ in range(a.rounds)]
        parts = []
        for way in ("kernels", "bands", "workers"):
            ms = [r[way] for r in runs if r[way] > 0 and r["kernels"] > 0]
            if not ms:
                continue
            ratio = statistics.median(r[way] / r["kernels"] for r in runs if r[way] > 0 and r["kernels"] > 0)
            parts.append(f"{way} best {min(ms):.1f} ms, /kernels median {ratio:.3f}")
        print(f"row {row} {ROWS[row]}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
