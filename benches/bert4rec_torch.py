"""PyTorch baselines for benches/bert4rec.rs: the same BERT4Rec training step and
validation pass, timed on this machine, in two plain PyTorch versions: transformers'
BertModel (inputs_embeds) and torch's own nn.TransformerEncoder (post-norm layers as
BERT's, learned positions, embedding LayerNorm).

Same shapes as the candle benchmark: `--batch` rows of `--len` items drawn from
`--tracks` tracks with a frozen `[tracks, dim]` item table plus learned [MASK]/[PAD]
rows, 2 layers, 2 heads, intermediate 256, mask probability 0.2, cross-entropy over all
tracks at the masked positions only, Adam lr 1e-3. Prints one JSON line: seconds per
step; or per epoch with `--epoch FILE` (the candle benchmark's batches); or per
validation pass with `--validate FILE` (its validation users: each history's last
`len - 1` items plus [MASK], `-log p` of the held-out tracks at [MASK], no gradients).

    python benches/bert4rec_torch.py --arch encoder --tracks 5000 --dim 200 --batches 5
"""

import argparse
import json
import time

import torch


class TorchEncoder(torch.nn.Module):
    """BERT4Rec's encoder from torch's own layers: learned positions, LayerNorm and
    dropout on the input, two post-norm TransformerEncoderLayers (GELU)."""

    def __init__(self, dim, max_len):
        super().__init__()
        self.positions = torch.nn.Embedding(max_len, dim)
        self.norm = torch.nn.LayerNorm(dim, eps=1e-12)
        self.dropout = torch.nn.Dropout(0.1)
        layer = torch.nn.TransformerEncoderLayer(
            dim, 2, 256, dropout=0.1, activation="gelu", batch_first=True,
            layer_norm_eps=1e-12)
        self.layers = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, embeds, real):
        positions = self.positions.weight[: embeds.shape[1]]
        x = self.dropout(self.norm(embeds + positions))
        return self.layers(x, src_key_padding_mask=~real)


def bert(dim, max_len):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=2,
        hidden_size=dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=max_len,
        hidden_act="gelu",
    )
    model = BertModel(cfg, add_pooling_layer=False)

    def forward(embeds, real):
        return model(inputs_embeds=embeds, attention_mask=real.long()).last_hidden_state

    return model, forward


def read_batches(path, pad_id, width=None):
    """One batch per line, sequences separated by ';' (a sequence may carry '|held');
    each left-padded to the batch's longest or to `width`."""
    batches = []
    with open(path) as f:
        for line in f:
            parts = [s.split("|") for s in line.strip().split(";") if s]
            seqs = [[int(t) for t in p[0].split()] for p in parts]
            held = [[int(t) for t in p[1].split()] if len(p) > 1 else [] for p in parts]
            w = width or max(len(s) for s in seqs)
            rows = [[pad_id] * (w - len(s)) + s for s in seqs]
            batches.append((rows, held))
    return batches


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", choices=["bert", "encoder"], default="bert",
                   help="transformers' BertModel or torch's nn.TransformerEncoder")
    p.add_argument("--tracks", type=int, default=5000)
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--len", type=int, default=300)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--epoch", help="time one epoch over the batches in this file instead")
    p.add_argument("--validate", help="time one validation pass over the users in this file")
    p.add_argument("--pad", choices=["batch", "max"], default="batch",
                   help="with --epoch: pad each batch to its longest sequence or to --len")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    items = torch.randn(a.tracks, a.dim, device=dev)  # frozen: not a parameter
    special = torch.nn.Parameter(torch.randn(2, a.dim, device=dev) * 0.02)  # [MASK], [PAD]
    if a.arch == "bert":
        model, forward = bert(a.dim, a.len)
    else:
        model = TorchEncoder(a.dim, a.len)
        forward = model
    model = model.to(dev)
    opt = torch.optim.Adam(list(model.parameters()) + [special], lr=1e-3)
    mask_id, pad_id = a.tracks, a.tracks + 1

    def embed(tokens):
        return torch.nn.functional.embedding(tokens, torch.cat([items, special]))

    def step(tokens):
        real = tokens != pad_id
        masked = (torch.rand(tokens.shape, device=dev) < 0.2) & real
        targets = tokens[masked]
        tokens = tokens.masked_fill(masked, mask_id)
        hidden = forward(embed(tokens), real)
        logits = hidden[masked] @ items.T
        loss = torch.nn.functional.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def validate(batches):
        total, users = 0.0, 0
        for rows, held in batches:
            tokens = torch.tensor(rows, device=dev)
            hidden = forward(embed(tokens), tokens != pad_id)
            logp = torch.log_softmax(hidden[:, -1] @ items.T, dim=-1)
            for row, h in zip(logp, held):
                total += -row[h].mean().item()
                users += 1
        return total / max(users, 1)

    if a.validate:
        model.eval()
        batches = read_batches(a.validate, pad_id)
        validate(batches[:1])  # warm-up
        start = time.perf_counter()
        validate(batches)
        seconds = time.perf_counter() - start
    elif a.epoch:
        model.train()
        batches = [torch.tensor(rows, device=dev) for rows, _ in
                   read_batches(a.epoch, pad_id, a.len if a.pad == "max" else None)]
        step(batches[0])  # warm-up
        start = time.perf_counter()
        for b in batches:
            step(b)
        seconds = time.perf_counter() - start
    else:
        model.train()

        def random_batch():
            return torch.randint(0, a.tracks, (a.batch, a.len), device=dev)
        step(random_batch())  # warm-up
        start = time.perf_counter()
        for _ in range(a.batches):
            step(random_batch())
        seconds = (time.perf_counter() - start) / a.batches
    # VmHWM of this process image: getrusage's ru_maxrss carries the (larger) peak of the
    # benchmark that forked us over exec, so it would misreport.
    peak_mib = float("nan")
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_mib = int(line.split()[1]) / 1024
    print(json.dumps({
        "seconds": seconds,
        "peak_rss_mib": peak_mib,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "arch": a.arch,
        "device": str(dev),
    }))


if __name__ == "__main__":
    main()
