"""Embedding throughput on a GPU: fp32 and fp16, several batch sizes, stage vs bare encode.

Made to run as one command on a lent GPU machine (see tests/benchmarks/gpu/):

    bash tests/benchmarks/gpu/pack.sh     # here: model (fp16 weights), SciFact chunks, wheels
    bash tests/benchmarks/gpu/run.sh      # there, with carry [".gpu"]; under 5 minutes

For each precision and batch size it times the pipeline's `Embedder.encode`
(length-sorted batches, the embed stage's code path) and a bare
`SentenceTransformer.encode` on the same chunks, after a warm-up, and reads
the peak GPU memory of each. It also reports how far fp16 vectors are from
fp32 ones (cosine). The carried weights are the model's rounded to fp16 (the
device tool carries 64 MiB); fp32 runs upcast them, which changes no timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

BATCH_SIZES = (64, 128, 256, 512, 1024)


def _timed(run: Any, cuda: bool) -> tuple[float, np.ndarray, int]:
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    vectors = run()
    if not cuda:
        return time.perf_counter() - started, vectors, 0
    torch.cuda.synchronize()
    return time.perf_counter() - started, vectors, torch.cuda.max_memory_allocated() // 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--chunks", required=True)
    parser.add_argument("--json")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--limit", type=int, help="only the first N chunks")
    parser.add_argument(
        "--dry-run-on-cpu",
        action="store_true",
        help="check the script on a machine without a GPU (figures mean nothing)",
    )
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from rag_ingest.config import EmbeddingConfig
    from rag_ingest.embedding import Embedder

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run_on_cpu:
        print("no CUDA device: this benchmark is for a GPU machine")
        return 1
    target = "cuda" if cuda else "cpu"
    table = pq.read_table(args.chunks, columns=["text", "token_count"])
    if args.limit:
        table = table.slice(0, args.limit)
    texts = table["text"].to_pylist()
    lengths = table["token_count"].to_pylist()
    device = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    print(f"{device}; torch {torch.__version__}; {len(texts)} SciFact chunks")
    rows: list[dict[str, Any]] = []
    reference: dict[str, np.ndarray] = {}
    for precision in ("fp32", "fp16"):
        bare = SentenceTransformer(args.model, device=target, local_files_only=True)
        bare.half() if precision == "fp16" else bare.float()
        for batch_size in map(int, args.batch_sizes.split(",")):
            config = EmbeddingConfig(
                model_path=args.model, device=target, precision=precision, batch_size=batch_size
            )
            with Embedder(config) as embedder:
                embedder.encode(texts[:1024], lengths[:1024])  # warm-up: kernels, allocator
                stage_s, stage_v, stage_mib = _timed(partial(embedder.encode, texts, lengths), cuda)
            bare.encode(texts[:1024], batch_size=batch_size)
            bare_s, _, bare_mib = _timed(
                partial(bare.encode, texts, batch_size=batch_size, normalize_embeddings=True), cuda
            )
            reference.setdefault(precision, stage_v)
            row = {
                "precision": precision,
                "batch_size": batch_size,
                "stage_chunks_per_second": round(len(texts) / stage_s, 1),
                "bare_chunks_per_second": round(len(texts) / bare_s, 1),
                "ratio_to_bare": round(bare_s / stage_s, 3),
                "stage_peak_gpu_mib": stage_mib,
                "bare_peak_gpu_mib": bare_mib,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        del bare
        if cuda:
            torch.cuda.empty_cache()
    cosine = (reference["fp16"] * reference["fp32"]).sum(axis=1)
    print(
        f"\n{'precision':<10}{'batch':>6}{'stage/s':>10}{'bare/s':>10}{'ratio':>7}"
        f"{'stage MiB':>10}{'bare MiB':>9}"
    )
    for row in rows:
        print(
            f"{row['precision']:<10}{row['batch_size']:>6}{row['stage_chunks_per_second']:>10.0f}"
            f"{row['bare_chunks_per_second']:>10.0f}{row['ratio_to_bare']:>7.3f}"
            f"{row['stage_peak_gpu_mib']:>10}{row['bare_peak_gpu_mib']:>9}"
        )
    print(f"fp16 vs fp32 vectors: cosine mean {cosine.mean():.5f}, min {cosine.min():.5f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": device,
                    "chunks": len(texts),
                    "rows": rows,
                    "fp16_cosine_to_fp32": {
                        "mean": float(cosine.mean()),
                        "min": float(cosine.min()),
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
