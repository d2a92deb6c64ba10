"""Embedding throughput on CPU: the pipeline's embed stage against bare encode.

    make bench-embedding            (about 8 minutes on the 2-core machines)

SciFact abstracts (every document a test query judges, then others up to
--docs) are chunked with the project's chunker (240/32 tokens), and the same
chunks are embedded by:

- bare: `SentenceTransformer.encode` over all chunks in one call (it sorts by
  length itself) at the best batch size of a short sweep (run in its own
  process, so its largest batch does not set bare's peak memory); model load
  not timed;
- stage (torch | torch-bf16 | onnx | onnx-int8): `pipeline.embed_shard` on one
  shard holding all chunks, timed whole (model load, Parquet in and out
  included).

Each variant runs in a fresh process, so its peak memory (max RSS) is its
own. The retrieval quality of each variant's vectors is scored on the test
queries whose judged documents are all in the subset (nDCG@10, Recall@100,
documents ranked by their best chunk), and its vectors are compared with
bare's (lowest cosine over all chunks), so the cost of lower precision is a
number, not a guess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.benchmarks.common import SCIFACT, parser_for, peak_rss_mib, save_json, scifact_present

PROJECT = Path(__file__).resolve().parents[2]
BATCH_SIZES = (16, 32, 64, 128)
# Stage variants: name -> the `embedding` settings that run it.
STAGE_VARIANTS: dict[str, dict[str, str]] = {
    "torch": {"backend": "torch"},
    "torch-bf16": {"backend": "torch", "precision": "bf16"},
    "onnx": {"backend": "onnx"},
    "onnx-int8": {"backend": "onnx-int8"},
}


def judged_queries() -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels" / "test.tsv") as handle:
        next(handle)
        for line in handle:
            query, doc, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query, {})[doc] = int(score)
    return qrels


def prepare(workdir: Path, docs: int, max_tokens: int, overlap: int) -> dict[str, Any]:
    """Chunk rows of a SciFact subset -> workdir/chunks.parquet; queries -> queries.json."""
    from rag_ingest.chunking import Chunker, load_tokenizer
    from rag_ingest.embedding import resolve_model_path
    from rag_ingest.identity import content_hash

    qrels = judged_queries()
    judged = {doc for rel in qrels.values() for doc in rel}
    records = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl")]
    chosen = [r for r in records if r["_id"] in judged]
    chosen += [r for r in records if r["_id"] not in judged][: max(0, docs - len(chosen))]
    chunker = Chunker(
        load_tokenizer(resolve_model_path("packaged:all-MiniLM-L6-v2")), max_tokens, overlap
    )
    rows: dict[str, list[Any]] = {
        k: [] for k in ("chunk_id", "doc_id", "text", "token_count", "text_hash")
    }
    for record in chosen:
        text = f"{record['title']}\n\n{record['text']}" if record["title"] else record["text"]
        for chunk in chunker.split(text):
            rows["chunk_id"].append(f"{record['_id']}#{chunk.index}")
            rows["doc_id"].append(record["_id"])
            rows["text"].append(chunk.text)
            rows["token_count"].append(chunk.token_count)
            rows["text_hash"].append(content_hash(chunk.text))
    pq.write_table(pa.table(rows), workdir / "chunks.parquet")
    in_subset = {doc["_id"] for doc in chosen}
    queries = {
        q["_id"]: q["text"]
        for q in map(json.loads, open(SCIFACT / "queries.jsonl"))
        if q["_id"] in qrels and set(qrels[q["_id"]]) <= in_subset
    }
    (workdir / "queries.json").write_text(json.dumps(queries))
    return {"documents": len(chosen), "chunks": len(rows["text"]), "queries": len(queries)}


# ------------------------------------------------------------- child processes


def _bare_model() -> Any:
    from sentence_transformers import SentenceTransformer

    from rag_ingest.embedding import resolve_model_path

    return SentenceTransformer(
        str(resolve_model_path("packaged:all-MiniLM-L6-v2")), device="cpu"
    ).float()


def child_sweep(workdir: Path, batch_sizes: list[int]) -> dict[str, Any]:
    """Bare encode's chunks/s per batch size on a sample spread over the chunks."""
    model = _bare_model()
    texts = pq.read_table(workdir / "chunks.parquet")["text"].to_pylist()
    sample = texts[:: max(1, len(texts) // 384)][:384]
    sweep = {}
    for size in batch_sizes:
        started = time.perf_counter()
        model.encode(sample, batch_size=size, normalize_embeddings=True)
        sweep[size] = round(len(sample) / (time.perf_counter() - started), 1)
    return {"batch_sweep": sweep, "best": max(sweep, key=lambda size: sweep[size])}


def child_bare(workdir: Path, batch_size: int) -> dict[str, Any]:
    """One `encode` call over every chunk (it sorts by length itself); load not timed."""
    model = _bare_model()
    texts = pq.read_table(workdir / "chunks.parquet")["text"].to_pylist()
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib()
    np.save(workdir / "bare.npy", vectors.astype(np.float32))
    queries = json.loads((workdir / "queries.json").read_text())
    np.save(
        workdir / "bare-queries.npy",
        model.encode(list(queries.values()), batch_size=batch_size, normalize_embeddings=True),
    )
    return {
        "variant": "bare torch encode",
        "batch_size": batch_size,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(len(texts) / seconds, 2),
        "peak_mib": peak,
    }


def child_stage(workdir: Path, variant: str, batch_size: int) -> dict[str, Any]:
    from rag_ingest import parquet_io, pipeline
    from rag_ingest.config import EmbeddingConfig
    from rag_ingest.embedding import Embedder
    from rag_ingest.run import RunLayout

    settings = STAGE_VARIANTS[variant]
    run_dir = workdir / f"stage-{variant}"
    config = workdir / f"{variant}.yaml"
    config.write_text(
        json.dumps(
            {
                "sources": [{"name": "scifact", "location": str(workdir / "corpus")}],
                "embedding": {**settings, "batch_size": batch_size, "device": "cpu"},
                "paths": {"models": str(workdir / "models")},
            }
        )
    )
    chunks = pq.read_table(workdir / "chunks.parquet")
    embedding = EmbeddingConfig.model_validate(settings)
    (shard,) = parquet_io.write_shards(
        chunks, run_dir / "to_embed", chunks.num_rows, embedding.window
    )
    if settings["backend"] != "torch":
        Embedder(embedding, workdir / "models").close()  # one-off export, not timed
    started = time.perf_counter()
    result = pipeline.embed.shard(str(config), shard)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib()
    out = pq.read_table(RunLayout.of_shard(shard).embedded(shard))
    np.save(workdir / f"{variant}.npy", np.array(out["vector"].to_pylist(), dtype=np.float32))
    queries = json.loads((workdir / "queries.json").read_text())
    with Embedder(embedding, workdir / "models") as embedder:
        np.save(workdir / f"{variant}-queries.npy", embedder.encode(list(queries.values())))
    return {
        "variant": f"stage {variant}",
        "batch_size": batch_size,
        "seconds": round(seconds, 2),
        "model_load_seconds": result.model_load_seconds,
        "chunks_per_second": round(chunks.num_rows / seconds, 2),
        "peak_mib": peak,
    }


# ------------------------------------------------------------- parent


def retrieval_quality(workdir: Path, name: str) -> dict[str, float]:
    from rag_ingest.evaluation import ndcg_at_k, rank_documents, recall_at_k

    chunks = pq.read_table(workdir / "chunks.parquet", columns=["doc_id"])
    doc_ids = chunks["doc_id"].to_pylist()
    vectors = np.load(workdir / f"{name}.npy")
    query_vectors = np.load(workdir / f"{name}-queries.npy")
    queries = list(json.loads((workdir / "queries.json").read_text()))
    qrels = judged_queries()
    ndcg, recall = [], []
    for query, query_vector in zip(queries, query_vectors, strict=True):
        scores = vectors @ query_vector
        top = np.argsort(-scores)[:400]
        ranked = rank_documents([(doc_ids[i], float(scores[i])) for i in top])
        ndcg.append(ndcg_at_k(ranked, qrels[query], 10))
        recall.append(recall_at_k(ranked, qrels[query], 100))
    return {
        "ndcg@10": round(float(np.mean(ndcg)), 4),
        "recall@100": round(float(np.mean(recall)), 4),
    }


def _child(args: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_embedding", *args],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--docs", type=int, default=1200, help="SciFact documents to chunk")
    parser.add_argument("--child", help=argparse_hidden())
    parser.add_argument("--workdir")
    parser.add_argument("--backend", help="a stage variant: " + ", ".join(STAGE_VARIANTS))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.child == "sweep":
        print(json.dumps(child_sweep(Path(args.workdir), list(BATCH_SIZES))))
        return 0
    if args.child == "bare":
        print(json.dumps(child_bare(Path(args.workdir), args.batch_size)))
        return 0
    if args.child == "stage":
        print(json.dumps(child_stage(Path(args.workdir), args.backend, args.batch_size)))
        return 0
    if not scifact_present():
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-embedding-"))
    subset = prepare(workdir, args.docs, args.max_tokens, args.overlap)
    print(
        f"SciFact subset: {subset['documents']} documents -> {subset['chunks']} chunks "
        f"({args.max_tokens}/{args.overlap} tokens), {subset['queries']} judged queries; CPU"
    )
    sweep = _child(["--child", "sweep", "--workdir", str(workdir)])
    print(f"bare encode batch-size sweep (chunks/s on 384 chunks): {sweep['batch_sweep']}")
    best = str(sweep["best"])
    bare = _child(["--child", "bare", "--workdir", str(workdir), "--batch-size", best])
    results = [bare]
    for variant in STAGE_VARIANTS:
        results.append(
            _child(
                [
                    "--child", "stage", "--workdir", str(workdir),
                    "--backend", variant, "--batch-size", best,
                ]
            )
        )  # fmt: skip
    names = ["bare", *STAGE_VARIANTS]
    print(
        f"\n{'variant':<20}{'chunks/s':>10}{'x bare':>9}{'seconds':>9}{'peak MiB':>10}"
        f"{'nDCG@10':>9}{'R@100':>8}{'min cos':>10}"
    )
    bare_vectors = np.load(workdir / "bare.npy")
    for name, result in zip(names, results, strict=True):
        result["ratio_to_bare"] = round(result["chunks_per_second"] / bare["chunks_per_second"], 3)
        result.update(retrieval_quality(workdir, name))
        cosine = (np.load(workdir / f"{name}.npy") * bare_vectors).sum(axis=1)
        result["min_cosine_to_bare"] = round(float(cosine.min()), 6)
        print(
            f"{result['variant']:<20}{result['chunks_per_second']:>10.2f}"
            f"{result['ratio_to_bare']:>9.3f}{result['seconds']:>9.1f}{result['peak_mib']:>10}"
            f"{result['ndcg@10']:>9.4f}{result['recall@100']:>8.4f}"
            f"{result['min_cosine_to_bare']:>10.6f}"
        )
    print(
        "\nstage times include model load and Parquet in/out; bare times only encode. "
        "Targets: stage torch >= 0.95 x bare; an ONNX stage > 1.0 x bare. Faithful "
        "variants (torch, torch-bf16, onnx) should score bare's nDCG@10 and R@100."
    )
    save_json(args.json, {"subset": subset, "results": results})
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
