#!/usr/bin/env python3
"""PyTorch reference of pocketrec's DLRM (kaggle preset), for comparing speed and AUC on the same data.

Not part of CI. It mirrors the model of docs/model-file.md: bottom MLP 13-512-256-64-16 (ReLU after every layer),
26 embeddings of d = 16, pairwise dot interaction (strict lower triangle) after the bottom output,
top MLP 367-512-256-1, BCE loss; dense inputs max(x, 0) then log1p. Embeddings are FULL tables (one
row per distinct training value, plus an unseen row), the uncompressed reference.

  python3 bench/torch_dlrm.py train --train train.tsv --eval eval.tsv --epochs 1 --batch 2048
  python3 bench/torch_dlrm.py speed --batch 128 --steps 50       # random data, samples/s
  python3 bench/torch_dlrm.py score --rows 100000 --device cuda  # inference latency, eager and CUDA graph

Needs torch and numpy (pip install torch numpy).
"""
import argparse
import time

import numpy as np
import torch
from torch import nn

N_DENSE, N_SPARSE, D = 13, 26, 16


def mlp(widths, relu_last):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b)
        nn.init.normal_(lin.weight, 0.0, (2.0 / (a + b)) ** 0.5)
        nn.init.normal_(lin.bias, 0.0, (1.0 / b) ** 0.5)
        layers.append(lin)
        if relu_last or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, table_sizes):
        super().__init__()
        self.bottom = mlp([N_DENSE, 512, 256, 64, D], relu_last=True)
        n = N_SPARSE + 1
        self.top = mlp([D + n * (n - 1) // 2, 512, 256, 1], relu_last=False)
        # Sparse gradients, as the reference DLRM: a step touches only the rows it read.
        self.tables = nn.ModuleList(nn.Embedding(s, D, sparse=True) for s in table_sizes)
        for t, s in zip(self.tables, table_sizes):
            nn.init.uniform_(t.weight, -(1.0 / s) ** 0.5, (1.0 / s) ** 0.5)
        li, lj = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("li", li)
        self.register_buffer("lj", lj)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        vectors = torch.stack([x] + [t(sparse[:, f]) for f, t in enumerate(self.tables)], dim=1)
        z = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.li, self.lj]
        return self.top(torch.cat([x, z], dim=1)).squeeze(1)


def read_criteo(path, vocab=None):
    """Returns dense (log1p), labels and raw hex values per field; builds the vocabulary if None."""
    labels, dense, cats = [], [], []
    with open(path) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) != 1 + N_DENSE + N_SPARSE:
                continue
            labels.append(float(cols[0]))
            dense.append([max(float(c), 0.0) if c else 0.0 for c in cols[1:14]])
            cats.append(cols[14:])
    dense = np.log1p(np.asarray(dense, dtype=np.float32))
    build = vocab is None
    if build:
        vocab = [dict() for _ in range(N_SPARSE)]
    ids = np.zeros((len(cats), N_SPARSE), dtype=np.int64)
    for r, row in enumerate(cats):
        for f, v in enumerate(row):
            m = vocab[f]
            if build and v not in m:
                m[v] = len(m) + 1
            ids[r, f] = m.get(v, 0)
    return torch.from_numpy(dense), torch.from_numpy(ids), torch.tensor(labels), vocab


def auc(scores, labels):
    order = np.argsort(scores, kind="mergesort")
    s, y = scores[order], labels[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos = y.sum()
    neg = len(y) - pos
    return (ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg)


class Optimizers:
    """SGD and Adagrad take the sparse embedding gradients directly; Adam becomes SparseAdam on the
    tables (lazy, like pocketrec's) plus Adam on the MLPs."""

    def __init__(self, model, name, lr):
        if name == "sgd":
            self.opts = [torch.optim.SGD(model.parameters(), lr=lr)]
        elif name == "adagrad":
            self.opts = [torch.optim.Adagrad(model.parameters(), lr=lr)]
        else:
            dense = list(model.bottom.parameters()) + list(model.top.parameters())
            self.opts = [torch.optim.Adam(dense, lr=lr), torch.optim.SparseAdam(list(model.tables.parameters()), lr=lr)]

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()


def make_optimizer(model, name, lr):
    return Optimizers(model, name, lr)


def train(args):
    torch.manual_seed(args.seed)
    dense, ids, labels, vocab = read_criteo(args.train)
    edense, eids, elabels, _ = read_criteo(args.eval, vocab)
    model = DLRM([len(m) + 1 for m in vocab])
    opt = make_optimizer(model, args.optimizer, args.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    n = len(labels)
    start = time.time()
    for epoch in range(args.epochs):
        for o in opt.opts:
            for group in o.param_groups:
                group["lr"] = args.lr * args.lr_decay**epoch
        perm = torch.randperm(n)
        for b in range(0, n, args.batch):
            idx = perm[b : b + args.batch]
            opt.zero_grad()
            loss = loss_fn(model(dense[idx], ids[idx]), labels[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():
            scores = torch.cat([torch.sigmoid(model(edense[b : b + 8192], eids[b : b + 8192])) for b in range(0, len(elabels), 8192)])
        print(f"epoch {epoch + 1}: eval AUC {auc(scores.numpy(), elabels.numpy()):.4f} "
              f"({n * (epoch + 1) / (time.time() - start):.0f} samples/s incl. eval)")


def speed(args):
    torch.manual_seed(args.seed)
    model = DLRM([1_000_000] * N_SPARSE if args.full else [100_000] * N_SPARSE)
    opt = make_optimizer(model, args.optimizer, args.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = [(torch.rand(args.batch, N_DENSE) * 5, torch.randint(0, 100_000, (args.batch, N_SPARSE)),
                torch.randint(0, 2, (args.batch,)).float()) for _ in range(8)]
    def step(i):
        d, s, y = batches[i % len(batches)]
        opt.zero_grad()
        loss_fn(model(d, s), y).backward()
        opt.step()
    for i in range(5):
        step(i)
    start = time.time()
    for i in range(args.steps):
        step(i)
    secs = time.time() - start
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}: "
          f"{args.steps * args.batch / secs:.0f} samples/s")


def score(args):
    """Latency of scoring `rows` full rows (forward + sigmoid + top 10), eager and, on CUDA, replayed
    from a captured CUDA graph; the median of `reps` timed calls after warm-up."""
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    model = DLRM([100_000] * N_SPARSE).to(dev).eval()
    dense = (torch.rand(args.rows, N_DENSE) * 5).to(dev)
    ids = torch.randint(0, 100_000, (args.rows, N_SPARSE)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run():
        return torch.topk(torch.sigmoid(model(dense, ids)), 10).indices

    def median_ms(f):
        for _ in range(5):
            f()
        sync()
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            f()
            sync()
            times.append(time.perf_counter() - t)
        return 1e3 * sorted(times)[len(times) // 2]

    with torch.no_grad():
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}: "
              f"{args.rows} full rows, eager {median_ms(run):.2f} ms", flush=True)
        if dev.type == "cuda":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    run()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                run()
            print(f"  CUDA graph replay {median_ms(graph.replay):.2f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train", required=True)
    t.add_argument("--eval", required=True)
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch", type=int, default=2048)
    t.add_argument("--optimizer", default="adam", choices=["sgd", "adagrad", "adam"])
    t.add_argument("--lr", type=float, default=0.003)
    t.add_argument("--lr-decay", type=float, default=1.0, help="multiply the rate by this at each new epoch")
    t.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("speed")
    s.add_argument("--batch", type=int, default=2048)
    s.add_argument("--steps", type=int, default=30)
    s.add_argument("--optimizer", default="sgd", choices=["sgd", "adagrad", "adam"])
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--full", action="store_true", help="1M-row tables (default 100k rows)")
    s.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("score")
    c.add_argument("--rows", type=int, default=100_000)
    c.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    c.add_argument("--reps", type=int, default=50)
    c.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    {"train": train, "speed": speed, "score": score}[a.cmd](a)
