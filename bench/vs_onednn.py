#!/usr/bin/python3
"""weft against oneDNN's fused RNN primitive, nothing else: `weft bench` and
build/bench_onednn (bench/onednn_rnn.c) alternating, ROUNDS times per row,
each side's best and median ms per step, weft / oneDNN of both, and the
median of each round's own weft / oneDNN ("paired").  The
issue's target is weft / oneDNN <= 1 on every row; on this shared machine
only the ratios of one run mean anything.  (bench/compare_pytorch.py runs
PyTorch too, which takes minutes; this takes one.)

    /usr/bin/python3 bench/vs_onednn.py [--rounds 5] [--rows 0,1,2,3,4] [--threads 2]
                                        [--iters 10] [--weft build/weft] [--onednn build/bench_onednn]
                                        [--split]

--split says where a row's difference lies: forward or backward.  It
times the two halves apart, ROUNDS times alternating, best of the rounds:
weft's from `weft bench --profile` (its kernels' mean over the steps,
"(bwd)" ones apart; a row band's kernels count thread 0's rows), oneDNN's
forward and backward primitives from oneDNN's own timing
(ONEDNN_VERBOSE=2, mean over its timed steps), which leaves out the weight
reorders its step runs.  So the halves are compared with each other, not
with the steps above.
"""
import argparse, statistics

from ab import rounds, split
from compare_pytorch import ROWS, onednn, onednn_split, weft


def paired(w, d):
    """The median of the rounds' own weft / oneDNN: each round's two runs
    are minutes apart at most, so a load that comes and goes over a run
    moves both sides of a ratio, where best against best can pair a quiet
    minute of one side with a loaded one of the other."""
    return statistics.median(x / y for x, y in zip(w, d))


def halves(a):
    print(f"forward and backward apart, ms, best of {a.rounds} alternating rounds, {a.threads} threads")
    print("| row | cell T B I H | weft forward / backward | oneDNN forward / backward | weft / oneDNN forward | backward |")
    print("|---|---|---|---|---|---|")
    for r in (int(x) for x in a.rows.split(",")):
        cell, T, B, I, H = ROWS[r]
        w, d = rounds(a.rounds, lambda: split(a.weft, r, a.threads, a.iters),
                      lambda: onednn_split(a.onednn, cell, T, B, I, H, a.iters, a.threads))
        best = lambda side, half: min(x[half] for x in side)
        wf, wb, df, db = best(w, "forward"), best(w, "backward"), best(d, "forward"), best(d, "backward")
        print(f"| {r + 1} | {cell} {T} {B} {I} {H} | {wf:.2f} / {wb:.2f} | {df:.2f} / {db:.2f} "
              f"| **{wf / df:.3f}** | **{wb / db:.3f}** |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weft", default="build/weft")
    ap.add_argument("--onednn", default="build/bench_onednn")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--split", action="store_true", help="forward and backward apart")
    a = ap.parse_args()
    if a.split:
        halves(a)
        return
    print(f"ms per step, {a.threads} threads, {a.rounds} alternating rounds of {a.iters} iterations")
    print("| row | cell T B I H | weft best / median | oneDNN best / median | weft / oneDNN best | median | paired |")
    print("|---|---|---|---|---|---|---|")
    for r in (int(x) for x in a.rows.split(",")):
        cell, T, B, I, H = ROWS[r]
        w, d = rounds(a.rounds, lambda: weft(a.weft, cell, T, B, I, H, a.iters, a.threads)["ms_per_step"],
                      lambda: onednn(a.onednn, cell, T, B, I, H, a.iters, a.threads)["ms_per_step"])
        wm, dm = statistics.median(w), statistics.median(d)
        print(f"| {r + 1} | {cell} {T} {B} {I} {H} | {min(w):.2f} / {wm:.2f} | {min(d):.2f} / {dm:.2f} "
              f"| **{min(w) / min(d):.3f}** | {wm / dm:.3f} | {paired(w, d):.3f} |", flush=True)


if __name__ == "__main__":
    main()
