#!/usr/bin/python3
"""Is a training step linear in T?  Row 3 of the issue's table (LSTM, B=64,
I=H=256) and row 1 (LSTM, B=50, I=H=128) at T = 25 .. 400: ms per step and
ms per time step, best of the rounds (alternating), and compile ms.

    /usr/bin/python3 bench/seq_len.py [--weft build/weft] [--threads 2] [--rounds 3]
"""
import argparse

from compare_pytorch import weft

SEQ = [25, 50, 100, 200, 400]
CONFIGS = [("lstm", 64, 256, 256), ("lstm", 50, 128, 128)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weft", default="build/weft")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    best = {}
    for _ in range(a.rounds):
        for c in CONFIGS:
            for T in SEQ:
                j = weft(a.weft, c[0], T, *c[1:], 5, a.threads)
                k = (c, T)
                if k not in best or j["ms_per_step"] < best[k]["ms_per_step"]:
                    best[k] = j
    print("| cell, B, I=H | T | ms / step | ms per time step | compile ms | planned peak MB |")
    print("|---|---|---|---|---|---|")
    for c in CONFIGS:
        for T in SEQ:
            j = best[(c, T)]
            print(f"| {c[0]}, {c[1]}, {c[2]} | {T} | {j['ms_per_step']:.1f} | {j['ms_per_step'] / T:.3f} | "
                  f"{j['compile_ms']:.1f} | {j['peak_bytes'] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
