#!/usr/bin/python3
"""PyTorch twins of `weft train`'s tasks: the same data, split, tokenizer,
architecture, optimizer, batch and number of steps, so that weft's numbers
can be compared with PyTorch's measured in the same sitting (Debian's
python3-torch).  The last line printed is one JSON object like weft's --json.

  tools/torch_twin.py binary-addition
  tools/torch_twin.py charlm [--epochs 5 --steps-per-epoch 300 ...]
  tools/torch_twin.py topic [--cell lstm --bidirectional --layers 2 --no-mask --buckets 4 ...]

Random draws (initial weights, batches) come from torch's generator, not
weft's, so single runs agree within seed-to-seed noise, not bit for bit.
"""
import argparse
import json
import math
import os
import re
import string
import sys
import time

# torch.set_num_threads() does not reach BLIS, which PyTorch calls for its
# GEMMs: BLIS reads BLIS_NUM_THREADS when it loads (unset: one thread).  So
# give it the --threads count (default 2) before torch is imported.
_t = [sys.argv[i + 1] for i, x in enumerate(sys.argv[:-1]) if x == "--threads"]
os.environ.setdefault("BLIS_NUM_THREADS", _t[-1] if _t else "2")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

FORTUNES = "/usr/share/games/fortunes"
CLASSES = ["computers", "politics", "science", "songs-poems"]


def cookies(path):
    """The cookies of a fortune file (separated by lines holding only '%')."""
    out, cur = [], []
    with open(path, "rb") as f:
        for line in f:
            if line in (b"%\n", b"%"):
                if cur:
                    out.append(b"".join(cur))
                cur = []
            else:
                cur.append(line)
    if cur:
        out.append(b"".join(cur))
    return out


def make_optim(name, params, lr):
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    return kind[name](params, lr=lr)


def rnn_class(cell):
    # simple_rnn is Keras's SimpleRNN (one bias vector); nn.RNN has two, which
    # compute the same functions (16 more parameters for H = 16)
    return {"rnn_tanh": nn.RNN, "simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]


def last_state(h_n, layers, dirs):
    """[L*D, B, H] -> the top layer's final states, directions concatenated."""
    h = h_n.view(layers, dirs, h_n.shape[1], h_n.shape[2])[-1]
    return torch.cat(list(h), dim=1)


# ------------------------------------------------------------ binary addition
def binary_addition(a):
    torch.manual_seed(a.seed)
    H, B = a.hidden_size or 16, a.batch or 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.wih = nn.Parameter(torch.rand(H, 2) * 2 - 1)
            self.whh = nn.Parameter(torch.rand(H, H) * 2 - 1)
            self.out = nn.Parameter(torch.rand(1, H) * 2 - 1)

        def forward(self, x):  # [8, B, 2]
            h = torch.zeros(x.shape[1], H)
            ps = []
            for t in range(x.shape[0]):
                h = torch.sigmoid(x[t] @ self.wih.T + h @ self.whh.T)
                ps.append(torch.sigmoid(h @ self.out.T))
            return torch.stack(ps)  # [8, B, 1]

    def encode(av, bv):
        t = torch.arange(8).view(8, 1)
        x = torch.stack([(av >> t) & 1, (bv >> t) & 1], dim=2).float()
        return x, (((av + bv) >> t) & 1).float().unsqueeze(2)

    net = Net()
    opt = make_optim(a.optimizer or "sgd", net.parameters(), a.lr or 0.1)
    pa, pb = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    ax, ay = encode(pa.reshape(-1), pb.reshape(-1))
    t0, steps, acc, loss = time.time(), 0, 0.0, 0.0
    for _ in range(a.epochs or 50):
        for _ in range(a.steps_per_epoch or 1000):
            x, y = encode(torch.randint(0, 128, (B,)), torch.randint(0, 128, (B,)))
            l = 0.5 * ((net(x) - y) ** 2).sum() / B
            opt.zero_grad()
            l.backward()
            opt.step()
            steps += 1
        with torch.no_grad():
            p = net(ax)
            loss = float(0.5 * ((p - ay) ** 2).sum() / ax.shape[1])
            acc = float(((p > 0.5).float() == ay).all(dim=0).float().mean())
        if acc == 1.0:
            break
    return {"task": "binary-addition", "loss": loss, "accuracy": acc,
            "seconds": time.time() - t0, "steps": steps}


# --------------------------------------------------------------------- charlm
def charlm(a):
    torch.manual_seed(a.seed)
    path = a.data or FORTUNES
    if os.path.isdir(path):
        tr, te = [], []
        for name in sorted(n for n in os.listdir(path) if "." not in n
                           and os.path.isfile(os.path.join(path, n))):
            for i, c in enumerate(cookies(os.path.join(path, name))):
                (te if i % 10 == 9 else tr).append(c + b"\n")
        tr, te = b"".join(tr), b"".join(te)
    else:
        data = open(path, "rb").read()
        tr, te = data[:len(data) - len(data) // 10], data[len(data) - len(data) // 10:]
    chars = sorted(set(tr) | set(te))
    idx = {c: i for i, c in enumerate(chars)}
    train = torch.tensor([idx[c] for c in tr])
    test = torch.tensor([idx[c] for c in te])
    V, T, B = len(chars), a.seqlen or 10, a.batch or 128
    H, L = a.hidden_size or 128, a.layers or 1
    rnn = rnn_class(a.cell or "gru")(V, H, L, batch_first=True,
                                     bidirectional=a.bidirectional)
    D = 2 if a.bidirectional else 1
    out = nn.Linear(H * D, V)
    params = list(rnn.parameters()) + list(out.parameters())
    opt = make_optim(a.optimizer or "rmsprop", params, a.lr or 0.002)
    ar = torch.arange(T + 1)

    def logits(win):
        x = nn.functional.one_hot(win, V).float()
        _, h = rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return out(last_state(h, L, D))

    nwin = min(a.eval_windows or 4096, len(test) - T - 1)
    nb = (nwin + B - 1) // B
    starts = torch.tensor([i * (len(test) - T - 1) // (nb * B) for i in range(nb * B)])
    ev = test[starts.view(-1, 1) + ar]
    t0, steps = time.time(), 0
    for _ in range(a.epochs or 5):
        for _ in range(a.steps_per_epoch or 300):
            w = train[torch.randint(0, len(train) - T - 1, (B,)).view(-1, 1) + ar]
            l = nn.functional.cross_entropy(logits(w[:, :T]), w[:, T])
            opt.zero_grad()
            l.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            steps += 1
        with torch.no_grad():
            vl = float(nn.functional.cross_entropy(logits(ev[:, :T]), ev[:, T]))
        print(f"epoch: held-out loss {vl:.4f}, bpc {vl / math.log(2):.4f}", flush=True)
    return {"task": "charlm", "loss": vl, "bpc": vl / math.log(2),
            "seconds": time.time() - t0, "steps": steps}


# ---------------------------------------------------------------------- topic
PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")


def tokens(text):
    return [w for w in (PUNCT.sub("", t.lower()) for t in text.split()) if w]


def topic(a):
    torch.manual_seed(a.seed)
    path = a.data or FORTUNES
    tr, te = [], []
    for label, name in enumerate(CLASSES):
        for i, c in enumerate(cookies(os.path.join(path, name))):
            (te if i % 5 == 4 else tr).append((tokens(c.decode("latin-1")), label))
    if a.limit:
        tr = tr[:a.limit]
    counts = {}
    for ws, _ in tr:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))[:(a.max_tokens or 20000) - 2]
    vocab = {w: i + 2 for i, w in enumerate(words)}
    T = a.max_len or 64

    def encode(ds):
        x = torch.zeros(len(ds), T, dtype=torch.long)
        n = torch.zeros(len(ds), dtype=torch.long)
        for i, (ws, _) in enumerate(ds):
            ids = [vocab.get(w, 1) for w in ws][:T] or [1]
            x[i, :len(ids)] = torch.tensor(ids)
            n[i] = len(ids)
        return x, n, torch.tensor([l for _, l in ds])

    xtr, ntr, ytr = encode(tr)
    xte, nte, yte = encode(te)
    E, H, L, B = a.embed or 64, a.hidden_size or 16, a.layers or 1, a.batch or 32
    D = 2 if a.bidirectional else 1
    emb = nn.Embedding(max(a.max_tokens or 20000, len(vocab) + 2), E, padding_idx=0)  # Keras: max_tokens rows
    rnn = rnn_class(a.cell or "rnn_tanh")(E, H, L, batch_first=True,
                                          bidirectional=a.bidirectional)
    out = nn.Linear(H * D, len(CLASSES))
    params = list(emb.parameters()) + list(rnn.parameters()) + list(out.parameters())
    opt = make_optim(a.optimizer or "adam", params, a.lr or 0.001)

    def logits(x, n):
        e = emb(x)
        if not a.no_mask:
            e = nn.utils.rnn.pack_padded_sequence(e, n, batch_first=True,
                                                  enforce_sorted=False)
        _, h = rnn(e)
        h = h[0] if isinstance(h, tuple) else h
        return out(last_state(h, L, D))

    # --buckets K: as weft's, K buckets whose lengths are the largest length
    # of each equal-count slice of the sorted training lengths (the last one
    # max_len); each batch holds cookies of one bucket, padded to its length
    lens = [T]
    if a.buckets > 1:
        srt, lens = sorted(ntr.tolist()), []
        for b in range(1, a.buckets + 1):
            v = T if b == a.buckets else srt[len(srt) * b // a.buckets - 1]
            if not lens or v > lens[-1]:
                lens.append(v)
    bucket = [next(k for k, L_ in enumerate(lens) if L_ >= int(n) or k == len(lens) - 1)
              for n in ntr]
    members = [torch.tensor([i for i, k in enumerate(bucket) if k == b], dtype=torch.long)
               for b in range(len(lens))]
    t0, steps = time.time(), 0
    for _ in range(a.epochs or 5):
        batches = []
        for b, mem in enumerate(members):
            p_ = mem[torch.randperm(len(mem))]
            batches += [(lens[b], p_[i:i + B]) for i in range(0, len(p_), B)]
        for o in torch.randperm(len(batches)).tolist():
            Tb, j = batches[o]
            l = nn.functional.cross_entropy(logits(xtr[j, :Tb], ntr[j]), ytr[j])
            opt.zero_grad()
            l.backward()
            opt.step()
            steps += 1
        with torch.no_grad():
            lg = logits(xte, nte)
            vl = float(nn.functional.cross_entropy(lg, yte))
            acc = float((lg.argmax(1) == yte).float().mean())
        print(f"epoch: test loss {vl:.4f}, accuracy {acc:.4f}", flush=True)
    return {"task": "topic", "loss": vl, "accuracy": acc, "seconds": time.time() - t0,
            "steps": steps}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", choices=["binary-addition", "charlm", "topic"])
    for name in ["hidden-size", "layers", "epochs", "steps-per-epoch", "batch", "seqlen",
                 "eval-windows", "max-tokens", "max-len", "embed", "limit", "buckets"]:
        p.add_argument("--" + name, type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=0)
    p.add_argument("--cell", default=None)
    p.add_argument("--optimizer", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--no-mask", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    task = {"binary-addition": binary_addition, "charlm": charlm, "topic": topic}[a.task]
    print(json.dumps(task(a)))


if __name__ == "__main__":
    main()
