#!/usr/bin/python3
"""A/B timing of two weft builds (or two flag sets) on a shared machine.

Runs `weft bench ... --json` for A and B alternately, ROUNDS times, and
prints each side's best and median ms per step and B/A.  Alternating in one
script is the only fair way on a machine whose load moves by 2x: a change is
real when B/A holds for the best *and* the median.

    bench/ab.py --a build-old/weft --b build/weft [--rounds 5] [--row 0|...|4]
                [--a-args "--no-pass=fuse"] [--b-args ""] [--threads 2] [--iters 7]
"""
import argparse, shlex, statistics

from compare_pytorch import ROWS, weft


def run(binary, row, threads, iters, extra):
    return weft(binary, *ROWS[row], iters, threads, extra)["ms_per_step"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a-args", default="")
    ap.add_argument("--b-args", default="")
    ap.add_argument("--rows", default="0,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=7)
    a = ap.parse_args()
    for row in (int(r) for r in a.rows.split(",")):
        ta, tb = [], []
        for _ in range(a.rounds):
            ta.append(run(a.a, row, a.threads, a.iters, shlex.split(a.a_args)))
            tb.append(run(a.b, row, a.threads, a.iters, shlex.split(a.b_args)))
        ba, bb, ma, mb = min(ta), min(tb), statistics.median(ta), statistics.median(tb)
        print(f"row {row} {ROWS[row]}: A best {ba:.1f} median {ma:.1f} | B best {bb:.1f} median {mb:.1f} "
              f"| B/A best {bb / ba:.3f} median {mb / ma:.3f}", flush=True)


if __name__ == "__main__":
    main()
