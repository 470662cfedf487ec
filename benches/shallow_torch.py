"""A straightforward PyTorch (CPU) implementation of the Shallow Net, to time one epoch
against audiorec's candle implementation on the same data and the same machine.

Same model, loss and sampling as audiorec (DESIGN.md): frozen item table, user table
initialised with the mean of the user's train tracks, shared Linear + ReLU, cosine,
hinge with margin 0.2 over 20 negative users per positive pair (never the positive),
Adam lr 1e-3, the given batch size. It applies the tower to every gathered row, as a
first implementation would (audiorec applies it once per distinct row).

    python3 benches/shallow_torch.py DATA_DIR BACKEND [--batch 10000] [--batches N]

--batches times only the first N batches of the epoch and extrapolates (for the
paper-sized data); it prints seconds per epoch and per batch.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def train_pairs(data_dir, keep_from="2019-02-20", test_from="2020-02-20"):
    """(user row, track row) pairs first listened to in [keep_from, test_from)."""
    ids = {}
    with open(f"{data_dir}/trackid_sorted.csv") as f:
        next(f)
        for line in f:
            idx, tid = line.rstrip("\n").split(",")
            ids[tid] = int(idx)
    # "YYYY-MM-DD HH:MM:SS" timestamps compare as strings.
    lo, hi = keep_from, test_from
    first = {}
    users = {}
    with open(f"{data_dir}/userid_trackid_timestamp.tsv") as f:
        next(f)
        for line in f:
            u, t, ts = line.rstrip("\n").split("\t")
            if ts < lo or t not in ids:
                continue
            key = (u, ids[t])
            if key not in first or ts < first[key]:
                first[key] = ts
    pairs = [(u, t) for (u, t), ts in first.items() if ts < hi]
    for u, _ in pairs:
        users.setdefault(u, len(users))
    p = np.array([(users[u], t) for u, t in pairs], dtype=np.int64)
    return p, len(users)


class Shallow(nn.Module):
    def __init__(self, items, users, d_out):
        super().__init__()
        self.items = nn.Embedding.from_pretrained(items, freeze=True)
        self.users = nn.Embedding.from_pretrained(users, freeze=False)
        self.tower = nn.Sequential(nn.Linear(items.shape[1], d_out), nn.ReLU())

    def forward(self, u, i, neg):
        ue = self.tower(self.users(u))
        ie = self.tower(self.items(i))
        ne = self.tower(self.users(neg))
        s_pos = F.cosine_similarity(ue, ie, dim=-1)
        s_neg = F.cosine_similarity(ne, ie.unsqueeze(1), dim=-1)
        return torch.clamp(0.2 - s_pos.unsqueeze(1) + s_neg, min=0).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("backend")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=0)
    ap.add_argument("--negatives", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    pairs, n_users = train_pairs(args.data)
    items = torch.from_numpy(np.load(f"{args.data}/embeddings/{args.backend}.npy")).float()
    users = torch.zeros(n_users, items.shape[1])
    users.index_add_(0, torch.from_numpy(pairs[:, 0]), items[torch.from_numpy(pairs[:, 1])])
    users /= torch.bincount(torch.from_numpy(pairs[:, 0]), minlength=n_users).unsqueeze(1).float()
    model = Shallow(items, users, items.shape[1])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    pairs = torch.from_numpy(pairs)[torch.randperm(len(pairs))]
    n_batches = (len(pairs) + args.batch - 1) // args.batch
    todo = min(args.batches, n_batches) if args.batches else n_batches
    start = time.perf_counter()
    total = 0.0
    for b in range(todo):
        chunk = pairs[b * args.batch:(b + 1) * args.batch]
        u, i = chunk[:, 0], chunk[:, 1]
        neg = torch.randint(0, n_users - 1, (len(chunk), args.negatives))
        neg += (neg >= u.unsqueeze(1)).long()  # never the positive user
        loss = model(u, i, neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    seconds = time.perf_counter() - start
    per_batch = seconds / todo
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}: {len(pairs)} pairs, {n_users} users, "
          f"{items.shape[1]}-d, batch {args.batch}: {todo}/{n_batches} batches in {seconds:.2f} s, "
          f"{per_batch:.3f} s/batch, {per_batch * n_batches:.2f} s/epoch, mean loss {total / todo:.5f}")


if __name__ == "__main__":
    main()
