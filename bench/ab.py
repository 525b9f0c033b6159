#!/usr/bin/python3
"""A/B timing of two weft builds (or two flag sets) on a shared machine.

Runs `weft bench ... --json` for A and B alternately, ROUNDS times, and
prints each side's best and median ms per step and B/A.  Alternating in one
script is the only fair way on a machine whose load moves by 2x: a change is
real when B/A holds for the best *and* the median.

    bench/ab.py --a build-old/weft --b build/weft [--rounds 5] [--rows 0,2]
                [--a-args "--no-pass=fuse"] [--b-args ""] [--threads 2] [--iters 7]
                [--kernels | --compile]

--kernels compares kernels instead of steps: each run is `weft bench
--profile`, and for every line of the profile (op and shape; "band" for a
row band's kernels) it prints the microseconds per call, best and median of
each side, and B/A.  A kernel's change shows there long before it clears
the noise of a whole step.  The executor picks its mode from timed runs, so
pin it on both sides (--a-args/--b-args "--row-bands 1") for profiles with
the same lines.

--compile compares compile ms instead, on the issue's compile-time target:
4 LSTM layers at T = 1000 (B 4, I = H = 16, one step, one thread).
"""
import argparse, json, re, shlex, statistics, subprocess

from compare_pytorch import ROWS, bench_cmd, weft

PROFILE_LINE = re.compile(r"^\s*([\d.]+)\s+[\d.]+%\s+(\d+)\s+(?:[\d.]+\s+)?(\S.*)$")


def run(binary, row, threads, iters, extra):
    return weft(binary, *ROWS[row], iters, threads, extra)["ms_per_step"]


def profile(binary, row, threads, iters, extra=()):
    """[(profile line, ms per step, calls)], the step's ms and the profile's
    total ms per step in kernels (its header: the lines shown are the 25
    largest), from --profile."""
    cmd = bench_cmd(binary, *ROWS[row], iters, threads, ["--profile", *extra])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    step = next(float(l.split(" ms/step")[0].split()[-1]) for l in out if " ms/step (" in l)
    head = next(i for i, l in enumerate(out) if l.startswith("profile:"))
    total = float(out[head].split()[1])
    lines = [(m.group(3), float(m.group(1)), int(m.group(2))) for m in map(PROFILE_LINE.match, out[head + 2:]) if m]
    return lines, step, total


def run_kernels(binary, row, threads, iters, extra):
    """{profile line: microseconds per call} and the step's ms, from --profile."""
    lines, step, _ = profile(binary, row, threads, iters, extra)
    return {k: ms * 1000 / calls for k, ms, calls in lines}, step


def split(binary, row, threads, iters, extra=()):
    """The profile's kernels apart: forward and backward ms per step (the
    "(bwd)" lines shown; the rest of the total, the few small kernels past
    the 25 lines shown among them, counts as forward)."""
    lines, _, total = profile(binary, row, threads, iters, extra)
    bwd = sum(ms for k, ms, _ in lines if "(bwd)" in k)
    return {"forward": total - bwd, "backward": bwd}


COMPILE_CMD = ["bench", "--cell", "lstm", "--seq-len", "1000", "--batch", "4", "--input-size", "16",
               "--hidden-size", "16", "--layers", "4", "--iters", "1", "--threads", "1", "--json"]


def compile_ms(binary, extra):
    out = subprocess.run([binary, *COMPILE_CMD, *extra], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["compile_ms"]


def rounds(n, measure_a, measure_b):
    """n rounds of measure_a() then measure_b(), alternating: the two lists
    of what they returned, round by round."""
    ra, rb = [], []
    for _ in range(n):
        ra.append(measure_a())
        rb.append(measure_b())
    return ra, rb


def kernels(a, row):
    runs = dict(zip("AB", rounds(a.rounds, lambda: run_kernels(a.a, row, a.threads, a.iters, shlex.split(a.a_args)),
                                 lambda: run_kernels(a.b, row, a.threads, a.iters, shlex.split(a.b_args)))))
    print(f"row {row} {ROWS[row]}, {a.rounds} alternating rounds: microseconds per call, best / median")
    steps = {s: [r[1] for r in runs[s]] for s in runs}
    print(f"  {'step (ms)':<44} A {min(steps['A']):9.2f} {statistics.median(steps['A']):9.2f} | "
          f"B {min(steps['B']):9.2f} {statistics.median(steps['B']):9.2f} | B/A {min(steps['B']) / min(steps['A']):.3f}")
    times = {s: {} for s in runs}
    for s in runs:
        for per_call, _ in runs[s]:
            for k, us in per_call.items():
                times[s].setdefault(k, []).append(us)
    cell = lambda t: f"{min(t):9.1f} {statistics.median(t):9.1f}" if t else f"{'-':>9} {'-':>9}"
    for k in sorted(set(times["A"]) | set(times["B"]), key=lambda k: -min(times["A"].get(k, [0]))):
        ta, tb = times["A"].get(k, []), times["B"].get(k, [])
        ratio = f"{min(tb) / min(ta):.3f}" if ta and tb and min(ta) > 0 else "-"
        print(f"  {k:<44} A {cell(ta)} | B {cell(tb)} | B/A {ratio}", flush=True)


def alternate(a, measure):
    """measure(binary, extra args) for A and B in turn, a.rounds times: best and median of each, and B/A."""
    ta, tb = rounds(a.rounds, lambda: measure(a.a, shlex.split(a.a_args)), lambda: measure(a.b, shlex.split(a.b_args)))
    ba, bb, ma, mb = min(ta), min(tb), statistics.median(ta), statistics.median(tb)
    return (f"A best {ba:.1f} median {ma:.1f} | B best {bb:.1f} median {mb:.1f} "
            f"| B/A best {bb / ba:.3f} median {mb / ma:.3f}")


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
    ap.add_argument("--kernels", action="store_true", help="compare each kernel's time per call (--profile)")
    ap.add_argument("--compile", action="store_true", help="compare compile ms (4 LSTM layers, T = 1000)")
    a = ap.parse_args()
    if a.compile:
        print("compile, 4 LSTM layers T=1000 (ms): " + alternate(a, compile_ms),
              flush=True)
        return
    for row in (int(r) for r in a.rows.split(",")):
        if a.kernels:
            kernels(a, row)
            continue
        print(f"row {row} {ROWS[row]}: " +
              alternate(a, lambda binary, extra: run(binary, row, a.threads, a.iters, extra)), flush=True)


if __name__ == "__main__":
    main()
