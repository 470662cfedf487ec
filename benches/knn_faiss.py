"""The exact scan's peer in benches/knn.rs: faiss IndexFlatIP on the same rows and queries.

Called by the bench as `python knn_faiss.py DIR DIM K`; DIR holds raw little-endian
arrays: items.f32 (n x DIM, L2-normalised rows), item_ids.u32, queries.f32 (q x DIM),
hist.u32 (every query's excluded track ids concatenated) and hist_offsets.i64 (q + 1).

faiss cannot exclude a different set per query, so (as anyone serving with it does) each
query asks for k + |its history| and drops the history afterwards; queries are grouped by
history length so that a group shares one k'. Prints one JSON line: seconds for the add,
the search (+ filtering) and a plain top-k search with nothing excluded, and threads;
the top-k ids and scores go to DIR (faiss_ids.u32, faiss_scores.f32, q x K) for the
bench to compare with its own answers.
"""
import json
import sys
import time

import faiss
import numpy as np


def main():
    folder, dim, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    items = np.fromfile(f"{folder}/items.f32", dtype="<f4").reshape(-1, dim)
    item_ids = np.fromfile(f"{folder}/item_ids.u32", dtype="<u4")
    queries = np.fromfile(f"{folder}/queries.f32", dtype="<f4").reshape(-1, dim)
    hist = np.fromfile(f"{folder}/hist.u32", dtype="<u4")
    offsets = np.fromfile(f"{folder}/hist_offsets.i64", dtype="<i8")
    lengths = np.diff(offsets)

    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(items)
    t1 = time.perf_counter()
    out_ids = np.zeros((len(queries), k), dtype=np.int64)
    out_scores = np.zeros((len(queries), k), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    # Groups of up to 256 queries of similar history length share one k'.
    for start in range(0, len(order), 256):
        group = order[start:start + 256]
        wide = k + int(lengths[group].max())
        scores, rows = index.search(queries[group], min(wide, len(items)))
        for g, q in enumerate(group):
            excluded = set(hist[offsets[q]:offsets[q + 1]].tolist())
            ids = item_ids[rows[g]]
            keep = [j for j, t in enumerate(ids) if rows[g][j] >= 0 and int(t) not in excluded][:k]
            out_ids[q, :len(keep)] = ids[keep]
            out_scores[q, :len(keep)] = scores[g][keep]
    t2 = time.perf_counter()
    # The same product and top-k without any exclusion: what faiss costs when nothing
    # needs filtering, a lower bound for the task above.
    index.search(queries, k)
    t3 = time.perf_counter()
    out_ids.astype("<u4").tofile(f"{folder}/faiss_ids.u32")
    out_scores.astype("<f4").tofile(f"{folder}/faiss_scores.f32")
    print(json.dumps({
        "add_seconds": t1 - t0,
        "search_seconds": t2 - t1,
        "plain_search_seconds": t3 - t2,
        "threads": faiss.omp_get_max_threads(),
        "faiss": faiss.__version__,
    }))


if __name__ == "__main__":
    main()
