#!/usr/bin/python3
"""weft vs PyTorch on the issue's training-step configurations, in one run.

For each row: weft's compiled training step (`weft bench --json`), PyTorch's
built-in nn.LSTM / nn.GRU, and the same cell written from primitives in
eager PyTorch, all forward + backward with weight gradients (no optimizer
step), f32, the same thread count.  Prints ms per step and the ratios; the
machine is shared, so only ratios from one run mean anything.

Threads: torch.set_num_threads() does not reach BLIS, which PyTorch calls
for its GEMMs and which reads BLIS_NUM_THREADS when it starts.  Unset, BLIS
runs on one thread.  So PyTorch runs in a child process twice: with BLIS on
the same number of threads as weft (the fair comparison, column "torch"),
and with BLIS on one thread (column "torch b1"), which is how the issue's
reference figures (62 / 9.4 / 278 / 174 / 126 ms) were evidently taken —
they match it, not the first.

oneDNN: when build/bench_onednn exists (bench/onednn_rnn.c, built when
Debian's libdnnl-dev is installed), oneDNN 2.6's fused RNN primitive runs
the same step in every round (column "oneDNN", OMP_NUM_THREADS = threads),
and "weft/oneDNN" is measured.  Without it, the column "oneDNN est" scales
the issue's oneDNN figure by this run's "torch b1" over the issue's PyTorch
figure.

    /usr/bin/python3 bench/compare_pytorch.py [--weft build/weft] [--threads 2]
        [--onednn build/bench_onednn] [--iters 10] [--rows 0,1,2] [--no-eager]
        [--repeat N] [--json out.json]
"""
import argparse, json, os, statistics, subprocess, sys, time

ROWS = [  # cell, T, B, I, H — the issue's table
    ("lstm", 80, 50, 128, 128),
    ("gru", 10, 128, 60, 128),
    ("lstm", 100, 64, 256, 256),
    ("gru", 100, 64, 256, 256),
    ("lstm", 50, 16, 512, 512),
]
# ms per step measured for the issue on this machine kind, 2 threads
ISSUE_PYTORCH = [62, 9.4, 278, 174, 126]
ISSUE_ONEDNN = [21, 3.6, 113, 83, 55]


def time_steps(step, iters):
    for _ in range(2):
        step()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def torch_builtin(cell, T, B, I, H, iters):
    import torch
    mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    go = torch.randn(T, B, H)

    def step():
        mod.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = mod(x)
        out.backward(go)
    return time_steps(step, iters)


def torch_eager_cell(cell, T, B, I, H, iters):
    """The cell from primitives, as a researcher writes a new gate in PyTorch."""
    import torch
    G = 4 if cell == "lstm" else 3
    k = 1.0 / H ** 0.5
    w_ih = (torch.rand(G * H, I) * 2 - 1).mul_(k).requires_grad_()
    w_hh = (torch.rand(G * H, H) * 2 - 1).mul_(k).requires_grad_()
    b_ih = (torch.rand(G * H) * 2 - 1).mul_(k).requires_grad_()
    b_hh = (torch.rand(G * H) * 2 - 1).mul_(k).requires_grad_()
    x = torch.randn(T, B, I, requires_grad=True)
    go = torch.randn(T, B, H)

    def step():
        for p in (w_ih, w_hh, b_ih, b_hh, x):
            p.grad = None
        h = torch.zeros(B, H)
        c = torch.zeros(B, H)
        outs = []
        for t in range(T):
            gi = x[t] @ w_ih.t() + b_ih
            gh = h @ w_hh.t() + b_hh
            if cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                ir, iz, in_ = gi.chunk(3, 1)
                hr, hz, hn = gh.chunk(3, 1)
                r = torch.sigmoid(ir + hr)
                z = torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + r * hn)
                h = n + z * (h - n)
            outs.append(h)
        torch.stack(outs).backward(go)
    return time_steps(step, iters)


def bench_cmd(binary, cell, T, B, I, H, iters, threads, extra=()):
    return [binary, "bench", "--cell", cell, "--seq-len", str(T), "--batch", str(B),
            "--input-size", str(I), "--hidden-size", str(H), "--iters", str(iters),
            "--threads", str(threads), *extra]


def run_json(cmd, env=None):
    """The JSON object a command prints on its last line."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def weft(binary, cell, T, B, I, H, iters, threads, extra=()):
    return run_json(bench_cmd(binary, cell, T, B, I, H, iters, threads, ["--json", *extra]))


def onednn_cmd(binary, cell, T, B, I, H, iters):
    return [binary, "--cell", cell, "--seq-len", str(T), "--batch", str(B), "--input-size", str(I),
            "--hidden-size", str(H), "--iters", str(iters), "--json"]


def onednn(binary, cell, T, B, I, H, iters, threads):
    """oneDNN's step (bench/onednn_rnn.c), on `threads` OpenMP threads."""
    return run_json(onednn_cmd(binary, cell, T, B, I, H, iters), dict(os.environ, OMP_NUM_THREADS=str(threads)))


def onednn_split(binary, cell, T, B, I, H, iters, threads):
    """oneDNN's forward and backward primitives apart: the mean ms of each
    over the timed steps (its three warm-up steps left out), from its own
    timing (ONEDNN_VERBOSE=2), as weft's profile averages its kernels over
    its steps.  They leave out the weight reorders its step also runs
    (bench/onednn_rnn.c)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ONEDNN_VERBOSE="2")
    out = subprocess.run(onednn_cmd(binary, cell, T, B, I, H, iters), check=True, capture_output=True, text=True,
                         env=env).stdout
    runs = {"forward": [], "backward": []}
    for line in out.splitlines():
        f = line.split(",")
        if len(f) > 6 and f[0] == "onednn_verbose" and f[1] == "exec" and f[3] == "rnn":
            runs["backward" if f[5].startswith("backward") else "forward"].append(float(f[-1]))
    if any(len(v) <= 3 for v in runs.values()):
        sys.exit(f"{binary}: no oneDNN RNN timings in its ONEDNN_VERBOSE=2 output (oneDNN 2.x's format expected)")
    return {k: statistics.mean(v[3:]) for k, v in runs.items()}


def torch_child(row, iters, threads, blis_threads, eager):
    """PyTorch's times for one row, in a child whose BLIS has blis_threads."""
    env = dict(os.environ, BLIS_NUM_THREADS=str(blis_threads))
    cmd = [sys.executable, __file__, "--child", str(row), "--iters", str(iters), "--threads", str(threads)]
    if not eager:
        cmd.append("--no-eager")
    return run_json(cmd, env)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(a):
    import resource
    import torch
    torch.set_num_threads(a.threads)
    cell, T, B, I, H = ROWS[a.child]
    # Peak memory of the step: the process's peak RSS after the built-in's
    # steps over its RSS before (torch imported, nothing built yet): the
    # weights, inputs, activations and gradients.  weft's figure is its
    # planned peak, which has the inputs, activations and gradients but not
    # the weights (at most 8.4 MB, row 5).
    before = rss_bytes()
    tb = torch_builtin(cell, T, B, I, H, a.iters)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    te = None if a.no_eager else torch_eager_cell(cell, T, B, I, H, a.iters)
    print(json.dumps(dict(builtin=tb, eager=te, peak_bytes=peak, version=torch.__version__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weft", default="build/weft")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onednn", default="build/bench_onednn",
                    help="oneDNN's step (bench/onednn_rnn.c); estimated from PyTorch when absent")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rows", default=",".join(str(i) for i in range(len(ROWS))))
    ap.add_argument("--no-eager", action="store_true", help="skip the eager-primitives PyTorch cell")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--repeat", type=int, default=1, help="alternating rounds per row; the best of each is kept")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a)
    results = []
    have_onednn = os.access(a.onednn, os.X_OK)
    if not have_onednn:
        print(f"{a.onednn} not found (install libdnnl-dev and rebuild): oneDNN is estimated, not measured")
    print(f"threads={a.threads} (PyTorch: torch.set_num_threads and BLIS_NUM_THREADS={a.threads}; "
          f"'torch b1': BLIS_NUM_THREADS=1, as in the issue's figures)")
    print(f"{'cell':5} {'T':>4} {'B':>4} {'I':>4} {'H':>4} | {'weft':>7} {'GF/s':>6} {'compile':>7} | "
          f"{'torch':>7} {'eager':>7} {'torch b1':>8} | {'torch/weft':>10} {'eager/weft':>10} {'b1/weft':>7} | "
          f"{'oneDNN' if have_onednn else 'oneDNN est':>10} {'weft/oneDNN':>11} | {'weft MB':>7} {'torch MB':>8}")
    for i in (int(r) for r in a.rows.split(",")):
        cell, T, B, I, H = ROWS[i]
        # --repeat N: N alternating rounds, the best of each kept
        w = fair = b1 = dn = None
        for _ in range(a.repeat):
            w2 = weft(a.weft, cell, T, B, I, H, a.iters, a.threads)
            f2 = torch_child(i, a.iters, a.threads, a.threads, not a.no_eager)
            b2 = torch_child(i, a.iters, a.threads, 1, False)
            if have_onednn:
                d2 = onednn(a.onednn, cell, T, B, I, H, a.iters, a.threads)
                dn = d2 if dn is None or d2["ms_per_step"] < dn["ms_per_step"] else dn
            w = w2 if w is None or w2["ms_per_step"] < w["ms_per_step"] else w
            fair = f2 if fair is None or f2["builtin"] < fair["builtin"] else fair
            b1 = b2 if b1 is None or b2["builtin"] < b1["builtin"] else b1
        tb, te, t1 = fair["builtin"], fair["eager"], b1["builtin"]
        est = ISSUE_ONEDNN[i] * t1 / ISSUE_PYTORCH[i]
        onednn_ms = dn["ms_per_step"] if dn else est
        wm = w["ms_per_step"]
        row = dict(cell=cell, T=T, B=B, I=I, H=H, weft_ms=wm, weft_gflops=w["gflops"],
                   compile_ms=w["compile_ms"], peak_bytes=w["peak_bytes"], torch_ms=tb, torch_eager_ms=te,
                   torch_blis1_ms=t1, onednn_est_ms=est, onednn_ms=dn["ms_per_step"] if dn else None,
                   torch_peak_bytes=fair["peak_bytes"])
        results.append(row)
        nan = float("nan")
        print(f"{cell:5} {T:4} {B:4} {I:4} {H:4} | {wm:7.1f} {w['gflops']:6.1f} {w['compile_ms']:7.1f} | "
              f"{tb:7.1f} {te if te else nan:7.1f} {t1:8.1f} | {tb / wm:10.2f} "
              f"{(te / wm) if te else nan:10.2f} {t1 / wm:7.2f} | {onednn_ms:10.1f} {wm / onednn_ms:11.2f} | "
              f"{w['peak_bytes'] / 1e6:7.1f} {fair['peak_bytes'] / 1e6:8.1f}")
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
