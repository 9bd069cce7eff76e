"""Lookup time per batch in a stored-views file of AudioSet size (fast_ast.kd.view_store.TeacherViews.lookup).

    python experiments/kd_consistent/lookup_bench.py --clips 2000000 --views 2 --classes 527 --topk 20 --batch 32

Generates a top-k store of random logits (the lookup cost does not depend on the values, nor on E beyond
the index arithmetic), writes it, reads it back with load_views, and times lookup() of random
(clip, view) batches: median over --repeats calls, plus the read time and the file size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fast_ast.kd.view_store import TeacherViews, id_hash, load_views, save_views


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2_000_000)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--classes", type=int, default=527)
    parser.add_argument("--topk", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    shape = (args.views, args.clips, args.topk)
    ids = [f"clip{i:07d}" for i in range(args.clips)]
    hashes = torch.tensor([id_hash(clip_id) for clip_id in ids], dtype=torch.long).expand(args.views, -1).contiguous()
    store = TeacherViews(
        torch.randint(0, 2**32, shape[:2], generator=generator), hashes, [f"c{i}" for i in range(args.classes)], {"teacher": "random"},
        topk_values=torch.randn(shape, generator=generator).half(),
        topk_indices=torch.randint(0, args.classes, shape, generator=generator).to(torch.int16),
    )
    with tempfile.TemporaryDirectory() as directory:
        path = save_views(Path(directory) / "views.safetensors", store)
        size = path.stat().st_size
        started = time.perf_counter()
        loaded = load_views(path)
        read = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
        index = torch.randint(0, args.clips, (args.batch,), generator=generator)
        view = torch.randint(0, args.views, (args.batch,), generator=generator)
        batch_ids = [ids[i] for i in index.tolist()]
        started = time.perf_counter()
        loaded.lookup(index, view, batch_ids, "bench")
        times.append(time.perf_counter() - started)
    print(f"{args.clips} clips x {args.views} views, top {args.topk} of {args.classes}: file {size / 2**20:.0f} MiB, read {read:.2f} s, "
          f"lookup of a batch of {args.batch}: median {statistics.median(times) * 1e6:.0f} us (p90 {sorted(times)[int(0.9 * len(times))] * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
