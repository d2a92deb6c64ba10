"""Chunking throughput: the Spark chunk job against LangChain's splitter.

    make bench-chunking            # SciFact and a generated 100 MB corpus
    python -m tests.benchmarks.bench_chunking --generated-mb 20   # quicker

Both split the same documents with the same tokenizer (all-MiniLM-L6-v2's),
the same chunk size and the same overlap, counted in tokens. Spark is timed
twice: including its start-up (a cold session) and excluding it (a warm
session). Prints MB/s of document text and the ratio. Not a test: figures
depend on the machine; docs/benchmarks.md records them with the command.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rag_ingest.config import PACKAGED_MODEL, parse_settings
from rag_ingest.embedding import resolve_model_path
from rag_ingest.identity import content_hash, doc_id
from tests.benchmarks.common import SCIFACT, parser_for, save_json, scifact_present


def scifact_documents() -> list[tuple[str, str]]:
    rows = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            rows.append((record["_id"], f"{record['title']}\n\n{record['text']}"))
    return rows


def generated_documents(
    abstracts: list[str], target_mb: float, seed: int = 7
) -> list[tuple[str, str]]:
    """Markdown documents of about 50 KB built from real abstracts, with headings."""
    rng = random.Random(seed)
    documents, total, number = [], 0, 0
    while total < target_mb * 1_000_000:
        parts = [f"# Collected notes {number}"]
        size = 0
        section = 0
        while size < 50_000:
            if size >= section * 8_000:
                section += 1
                parts.append(f"## Section {section}")
            abstract = rng.choice(abstracts)
            parts.append(abstract)
            size += len(abstract)
        text = "\n\n".join(parts)
        documents.append((f"gen-{number}", text))
        total += len(text.encode("utf-8"))
        number += 1
    return documents


def megabytes(documents: list[tuple[str, str]]) -> float:
    return sum(len(text.encode("utf-8")) for _, text in documents) / 1_000_000


def write_documents(run_dir: Path, documents: list[tuple[str, str]]) -> None:
    ids = [doc_id("bench", key) for key, _ in documents]
    texts = [text for _, text in documents]
    table = pa.table(
        {
            "doc_id": ids,
            "source": ["bench"] * len(ids),
            "uri": [f"bench://{key}" for key, _ in documents],
            "title": [key for key, _ in documents],
            "text": texts,
            "content_hash": [content_hash(t) for t in texts],
            "modified_at": pa.array([None] * len(ids), pa.timestamp("us", tz="UTC")),
            "page_starts": pa.array([None] * len(ids), pa.list_(pa.int64())),
            "metadata": pa.array([None] * len(ids), pa.string()),
        }
    )
    (run_dir / "documents").mkdir(parents=True)
    (run_dir / "plan").mkdir()
    pq.write_table(table, run_dir / "documents" / "part-0.parquet", row_group_size=256)
    pq.write_table(pa.table({"doc_id": ids}), run_dir / "plan" / "to_chunk.parquet")


def time_spark(settings, run_dir: Path, cold: bool) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds for the chunk job; `cold` also counts starting Spark (JVM included)."""
    from rag_ingest.spark import chunk_job, get_session

    started = time.perf_counter()
    spark = get_session(settings.spark, "bench-chunking")
    if not cold:
        spark.range(4).count()  # warm: JVM, Python workers started
        started = time.perf_counter()
    counts = chunk_job(spark, settings, settings.source("bench"), str(run_dir))
    return time.perf_counter() - started, counts["chunks"]


def time_spark_cold(run_dir: Path, max_tokens: int, overlap: int) -> tuple[float, int]:
    """A cold start in a fresh interpreter: stopping a session keeps its JVM alive."""
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks.bench_chunking",
        "--cold-run",
        str(run_dir),
        "--max-tokens",
        str(max_tokens),
        "--overlap",
        str(overlap),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["chunks"])


def time_langchain(
    documents: list[tuple[str, str]], max_tokens: int, overlap: int
) -> tuple[float, int]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(PACKAGED_MODEL)))
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=max_tokens, chunk_overlap=overlap
    )
    started = time.perf_counter()
    chunks = sum(len(splitter.split_text(text)) for _, text in documents)
    return time.perf_counter() - started, chunks


def line(what: str, seconds: float, size_mb: float, chunks: int) -> None:
    print(
        f"{what + ':':35} {seconds:7.1f} s  {size_mb / seconds:6.2f} MB/s  {chunks} chunks",
        flush=True,
    )


def run(name: str, documents: list[tuple[str, str]], settings, workdir: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]

    size = megabytes(documents)
    print(f"\n== {name}: {len(documents)} documents, {size:.1f} MB of text", flush=True)
    results: dict[str, object] = {"corpus": name, "documents": len(documents), "mb": round(size, 2)}
    # Cold: a fresh session is part of the measured time.
    cold_dir = workdir / f"{name}-cold"
    write_documents(cold_dir, documents)
    max_tokens, overlap = settings.chunking.max_tokens, settings.chunking.overlap_tokens
    seconds, chunks = time_spark_cold(cold_dir, max_tokens, overlap)
    results["spark_with_startup_mb_s"] = round(size / seconds, 3)
    line("spark chunk job, with start-up", seconds, size, chunks)
    warm_dir = workdir / f"{name}-warm"
    write_documents(warm_dir, documents)
    seconds, chunks = time_spark(settings, warm_dir, cold=False)
    spark_rate = size / seconds
    results["spark_mb_s"] = round(spark_rate, 3)
    results["spark_chunks"] = chunks
    line("spark chunk job, without start-up", seconds, size, chunks)
    seconds, chunks = time_langchain(
        documents, settings.chunking.max_tokens, settings.chunking.overlap_tokens
    )
    lc_rate = size / seconds
    results["langchain_mb_s"] = round(lc_rate, 3)
    results["langchain_chunks"] = chunks
    line("langchain splitter (1 process)", seconds, size, chunks)
    results["ratio_without_startup"] = round(spark_rate / lc_rate, 2)
    with_startup = float(results["spark_with_startup_mb_s"])  # type: ignore[arg-type]
    results["ratio_with_startup"] = round(with_startup / lc_rate, 2)
    print(
        f"ratio spark/langchain: {spark_rate / lc_rate:.2f}x without start-up, "
        f"{results['ratio_with_startup']}x with start-up"
    )
    return results


def bench_settings(workdir: Path, max_tokens: int, overlap: int):  # type: ignore[no-untyped-def]
    return parse_settings(
        {
            "sources": [{"name": "bench", "location": str(workdir / "corpus")}],
            "chunking": {"max_tokens": max_tokens, "overlap_tokens": overlap},
        },
        workdir,
    )


def main() -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--generated-mb", type=float, default=100.0)
    parser.add_argument("--cold-run", help=argparse.SUPPRESS)  # internal: one cold timing
    args = parser.parse_args()
    if args.cold_run:
        settings = bench_settings(Path(args.cold_run), args.max_tokens, args.overlap)
        seconds, chunks = time_spark(settings, Path(args.cold_run), cold=True)
        print(json.dumps({"seconds": seconds, "chunks": chunks}))
        return 0
    if not scifact_present():
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-chunking-"))
    settings = bench_settings(workdir, args.max_tokens, args.overlap)
    try:
        scifact = scifact_documents()
        results = [run("scifact", scifact, settings, workdir)]
        generated = generated_documents([text for _, text in scifact], args.generated_mb)
        results.append(run(f"generated-{args.generated_mb:g}mb", generated, settings, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
