"""PyTorch baseline for benches/bert4rec.rs: the same BERT4Rec training step with
transformers' BertModel (inputs_embeds), timed on this machine.

Same shapes as the candle benchmark: `--batch` rows of `--len` items drawn from
`--tracks` tracks with a frozen `[tracks, dim]` item table plus learned [MASK]/[PAD]
rows, 2 layers, 2 heads, intermediate 256, mask probability 0.2, cross-entropy over all
tracks at the masked positions only, Adam lr 1e-3. Prints one JSON line: seconds per
step, or per epoch with `--epoch FILE` (the candle benchmark's batches).

    python benches/bert4rec_torch.py --tracks 5000 --dim 200 --batches 5
"""

import argparse
import json
import time

import torch
from transformers import BertConfig, BertModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tracks", type=int, default=5000)
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--len", type=int, default=300)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--epoch", help="time one epoch over the batches in this file instead")
    p.add_argument("--pad", choices=["batch", "max"], default="batch",
                   help="with --epoch: pad each batch to its longest sequence or to --len")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    items = torch.randn(a.tracks, a.dim, device=dev)  # frozen: not a parameter
    special = torch.nn.Parameter(torch.randn(2, a.dim, device=dev) * 0.02)  # [MASK], [PAD]
    cfg = BertConfig(
        vocab_size=2,
        hidden_size=a.dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=a.len,
        hidden_act="gelu",
    )
    model = BertModel(cfg, add_pooling_layer=False).to(dev)
    opt = torch.optim.Adam(list(model.parameters()) + [special], lr=1e-3)
    mask_id, pad_id = a.tracks, a.tracks + 1

    def step(tokens):
        real = tokens != pad_id
        masked = (torch.rand(tokens.shape, device=dev) < 0.2) & real
        targets = tokens[masked]
        tokens = tokens.masked_fill(masked, mask_id)
        table = torch.cat([items, special])
        embeds = torch.nn.functional.embedding(tokens, table)
        attention = real.long()
        hidden = model(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
        logits = hidden[masked] @ items.T
        loss = torch.nn.functional.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    model.train()
    if a.epoch:
        # The candle benchmark's epoch, batch for batch: one line per batch, its sequences
        # separated by ';', each left-padded to the batch's longest or to --len.
        batches = []
        with open(a.epoch) as f:
            for line in f:
                seqs = [[int(t) for t in s.split()] for s in line.strip().split(";") if s]
                width = a.len if a.pad == "max" else max(len(s) for s in seqs)
                rows = [[pad_id] * (width - len(s)) + s for s in seqs]
                batches.append(torch.tensor(rows, device=dev))
        step(batches[0])  # warm-up
        start = time.perf_counter()
        for b in batches:
            step(b)
        seconds = time.perf_counter() - start
    else:
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
        "device": str(dev),
    }))


if __name__ == "__main__":
    main()
