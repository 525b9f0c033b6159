#!/usr/bin/python3
"""What each compiler pass buys: every row of the issue's table with all
passes, with none (`--no-passes`: the reference graph, still planned), and
with each pass disabled in turn.  Configurations alternate within a round,
and the best of the rounds is kept (the machine is shared).

    /usr/bin/python3 bench/passes.py [--weft build/weft] [--threads 2] [--rounds 2] [--rows 0,1,2,3,4]
"""
import argparse

from compare_pytorch import ROWS, weft

PASSES = ["fold", "simplify", "merge-gates", "cse", "batch-gemm", "batch-wgrad", "merge-wgrad", "fuse", "concat-operand", "pack", "dce", "schedule"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weft", default="build/weft")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", default="0,1,2,3,4")
    a = ap.parse_args()
    configs = [("all passes", [])] + [("--no-passes", ["--no-passes"])] + \
              [(f"without {p}", [f"--no-pass={p}"]) for p in PASSES]
    rows = [int(r) for r in a.rows.split(",")]
    best = {}
    for rnd in range(a.rounds):
        for r in rows:
            weft(a.weft, *ROWS[r], 5, a.threads)  # warm-up
            # each round starts the list at another place, so no configuration
            # always runs first (or right after another row's)
            shift = rnd * 5 % len(configs)
            for name, extra in configs[shift:] + configs[:shift]:
                j = weft(a.weft, *ROWS[r], 5, a.threads, extra)
                k = (r, name)
                if k not in best or j["ms_per_step"] < best[k]["ms_per_step"]:
                    best[k] = j
    print(f"ms per step, best of {a.rounds}, {a.threads} threads; kernels run = nodes that are not views")
    print("| configuration | " + " | ".join(f"row {r + 1} ms" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name, _ in configs:
        cells = []
        for r in rows:
            j = best[(r, name)]
            cells.append(f"{j['ms_per_step']:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("| configuration | " + " | ".join(f"row {r + 1} nodes / peak MB" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name, _ in configs:
        print(f"| {name} | " + " | ".join(f"{best[(r, name)]['nodes']} / {best[(r, name)]['peak_bytes'] / 1e6:.0f}"
                                          for r in rows) + " |")


if __name__ == "__main__":
    main()
