"""How cost grows with corpus size: 10k, 100k and 1M small documents.

    make bench-scale                      (SIZES=10000,100000 for a shorter run)

For each size, a fresh process generates the corpus (record files of
sentences drawn with a fixed seed from SciFact abstracts, or from a built-in
vocabulary when SciFact is absent) and runs the real stages on the embedded
default: extract, plan_documents, chunk, plan_chunks (Spark local mode,
every quality gate) and upsert into a fresh LanceDB store. The embedding
stage is replaced: vectors come from a precomputed pool of 4,096 unit
vectors, picked by each chunk's text hash, so the model's cost (measured in
`make bench-embedding`) does not hide the rest. The output says so.

Prints wall time per stage, documents per second and peak memory of the
Python process (VmHWM; Spark's JVM runs with `spark.driver_memory`, fixed),
and the growth factor of time per document and of memory between sizes.

Then (RERUN=0 leaves it out) each size is run again, in a process of its own,
after 1% of its documents got a new sentence and 0.1% were deleted, spread
over every file: the re-run's time and peak memory per stage against the
first run's (#24: at most 5% of the time, the same flat peak).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tests.benchmarks.common import SCIFACT, peak_rss_mib, save_json

PROJECT = Path(__file__).resolve().parents[2]
POOL_SIZE = 4096
RECORDS_PER_FILE = 50_000


def sentences() -> list[str]:
    if (SCIFACT / "corpus.jsonl").exists():
        found = []
        with open(SCIFACT / "corpus.jsonl") as lines:
            for line in lines:
                text = json.loads(line)["text"]
                found += [s.strip() + "." for s in text.split(". ") if len(s.split()) > 5]
        return found
    rng = random.Random(7)
    words = [f"term{n}" for n in range(5000)]
    return [" ".join(rng.choices(words, k=14)) + "." for _ in range(20000)]


def generate(folder: Path, size: int) -> None:
    """`size` records of 2 to 5 sentences, in files of RECORDS_PER_FILE."""
    rng = random.Random(20261130)
    pool = sentences()
    folder.mkdir(parents=True)
    for start in range(0, size, RECORDS_PER_FILE):
        with open(folder / f"part-{start // RECORDS_PER_FILE:05d}.jsonl", "w") as out:
            for n in range(start, min(size, start + RECORDS_PER_FILE)):
                text = " ".join(rng.choices(pool, k=rng.randint(2, 5)))
                out.write(
                    json.dumps({"_id": f"doc-{n}", "title": f"Note {n}", "text": text}) + "\n"
                )


def embed_from_pool(config: str, shard: str, vectors: np.ndarray) -> int:
    """The embed stage's output for one shard, with pool vectors instead of the model's."""
    from rag_ingest.embedding import ModelInfo
    from rag_ingest.pipeline.embed import stamp
    from rag_ingest.run import RunLayout

    info = ModelInfo("sentence-transformers/all-MiniLM-L6-v2", "pool", vectors.shape[1], 256)
    out_path = RunLayout.of_shard(shard).embedded(shard)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(shard)
    picks = np.array([int(h[:8], 16) % len(vectors) for h in table["text_hash"].to_pylist()])
    pq.write_table(stamp(table, vectors[picks], info), out_path)
    return table.num_rows


def pool_vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(POOL_SIZE, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run_stages(workdir: Path, size: int, run_id: str) -> dict[str, Any]:
    """Every stage of one run over the corpus in `workdir`, each timed, with the peak
    memory after it. Runs in its own process: its peak memory is this run's alone."""
    from rag_ingest import lease, pipeline
    from rag_ingest.config import load_settings
    from rag_ingest.quality import gates

    cfg, vectors = str(workdir / "rag_ingest.yaml"), pool_vectors()
    seconds: dict[str, float] = {}
    peak_after: dict[str, int] = {}  # VmHWM only grows: the stage where it jumps is the one

    def timed(stage: str, call: Any) -> Any:
        started = time.perf_counter()
        result = call()
        seconds[stage] = round(time.perf_counter() - started, 1)
        peak_after[stage] = peak_rss_mib()
        print(
            f"  {size} {run_id}: {stage} {seconds[stage]} s, peak {peak_after[stage]} MiB",
            file=sys.stderr,
            flush=True,
        )
        return result

    extract = timed("extract", lambda: pipeline.extract.run(cfg, "scale", run_id))
    timed("documents gate", lambda: gates.validate_documents(cfg, "scale", run_id))
    plan = timed("plan_documents", lambda: pipeline.plan.documents(cfg, "scale", run_id))
    timed("chunk", lambda: pipeline.chunk.run(cfg, "scale", run_id))
    timed("chunks gate", lambda: gates.validate_chunks(cfg, "scale", run_id))
    shards = timed("plan_chunks", lambda: pipeline.plan.chunks(cfg, "scale", run_id)).shards
    chunks = timed("embed (pool)", lambda: sum(embed_from_pool(cfg, s, vectors) for s in shards))
    upsert = timed("upsert", lambda: pipeline.upsert.run(cfg, "scale", run_id))
    # The source's lease, which the report task gives back in a DAG run (no report here).
    lease.release(load_settings(cfg).staging_dir, "scale", run_id)
    total = sum(seconds.values())
    return {
        "documents": size,
        "records_reused": extract.records_reused,
        "documents_changed": plan.documents_changed,
        "documents_vanished": plan.documents_vanished,
        "chunks": chunks,
        "chunks_written": upsert.chunks_written,
        "chunks_deleted": upsert.chunks_deleted,
        "seconds": seconds,
        "total_seconds": round(total, 1),
        "documents_per_second": round(size / total, 1),
        "ms_per_document": round(1000 * total / size, 3),
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_mib_after": peak_after,
        "store_mib": round(
            sum(p.stat().st_size for p in (workdir / "lancedb").rglob("*") if p.is_file()) / 2**20
        ),
    }


def first_run(size: int, workdir: Path) -> dict[str, Any]:
    """A fresh corpus of `size` documents, ingested into a fresh store."""
    corpus = workdir / "corpus"
    generate(corpus, size)
    (workdir / "rag_ingest.yaml").write_text(
        f"sources:\n  - name: scale\n    location: {corpus}\n    glob: '*.jsonl'\n"
        "    max_file_mb: 500\n"
        f"store:\n  path: {workdir / 'lancedb'}\n"
        f"paths:\n  staging: {workdir / 'staging'}\n  reports: {workdir / 'reports'}\n"
    )
    return run_stages(workdir, size, "manual__scale")


CHANGED_SHARE, DELETED_SHARE = 0.01, 0.001


def change_corpus(corpus: Path) -> tuple[int, int]:
    """1% of the records get a new sentence and 0.1% are deleted, spread over every
    file (seeded); returns how many of each."""
    rng = random.Random(20261207)
    changed = deleted = 0
    for path in sorted(corpus.glob("*.jsonl")):
        kept = []
        for line in path.read_text().splitlines():
            draw = rng.random()
            if draw < DELETED_SHARE:
                deleted += 1
                continue
            if draw < DELETED_SHARE + CHANGED_SHARE:
                record = json.loads(line)
                record["text"] += " A sentence added by the re-run."
                line = json.dumps(record)
                changed += 1
            kept.append(line)
        path.write_text("\n".join(kept) + "\n")
    return changed, deleted


def rerun(size: int, workdir: Path) -> dict[str, Any]:
    """The second run, after 1% of the documents changed and 0.1% were deleted."""
    changed, deleted = change_corpus(workdir / "corpus")
    result = run_stages(workdir, size, "manual__scale_rerun")
    return {**result, "records_changed": changed, "records_deleted": deleted}


def in_own_process(step: str, size: int, workdir: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_scale", step, str(size), workdir],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] in ("--first", "--rerun"):
        step = first_run if sys.argv[1] == "--first" else rerun
        print(json.dumps(step(int(sys.argv[2]), Path(sys.argv[3]))))
        return
    sizes = [int(s) for s in os.environ.get("SIZES", "10000,100000,1000000").split(",")]
    with_rerun = os.environ.get("RERUN", "1") != "0"
    output = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    print(
        "Embeddings come from a precomputed pool of 4,096 unit vectors (picked by text hash),\n"
        "not the model: this measures everything but the model (see bench-embedding for it).\n"
    )
    results, reruns = [], []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
            results.append(in_own_process("--first", size, workdir))
            if with_rerun:
                reruns.append(in_own_process("--rerun", size, workdir))
        # After each size: a long run keeps what it measured.
        save_json(output, {"first": results, "rerun": reruns})
    stages = list(results[0]["seconds"])
    print(
        "| documents | chunks | "
        + " | ".join(stages)
        + " | total s | docs/s | ms/doc | peak MiB | store MiB |"
    )
    print("|---:" * (len(stages) + 7) + "|")
    for r in results:
        cells = [f"{r['documents']:,}", f"{r['chunks']:,}"] + [str(r["seconds"][s]) for s in stages]
        cells += [
            str(r["total_seconds"]),
            str(r["documents_per_second"]),
            str(r["ms_per_document"]),
        ]
        cells += [str(r["peak_rss_mib"]), str(r["store_mib"])]
        print("| " + " | ".join(cells) + " |")
    print("\npeak MiB after each stage (VmHWM only grows: a jump is that stage's):")
    print("| documents | " + " | ".join(stages) + " |")
    print("|---:" * (len(stages) + 1) + "|")
    for r in results:
        after = r["peak_rss_mib_after"]
        print(f"| {r['documents']:,} | " + " | ".join(str(after[s]) for s in stages) + " |")
    first = results[0]
    for r in results[1:]:
        print(
            f"{first['documents']:,} -> {r['documents']:,}: time per document x"
            f"{r['ms_per_document'] / first['ms_per_document']:.2f}, peak memory x"
            f"{r['peak_rss_mib'] / first['peak_rss_mib']:.2f}, peak before the store's "
            f"writes (after embed) x{before_store(r) / before_store(first):.2f}"
        )
    if reruns:
        print_reruns(results, reruns, stages)


def print_reruns(firsts: list[dict], reruns: list[dict], stages: list[str]) -> None:
    """Each size's re-run (1% changed, 0.1% deleted) against its first run, per stage."""
    print(f"\nre-run after {CHANGED_SHARE:.0%} of the documents changed and "
          f"{DELETED_SHARE:.1%} were deleted: seconds (share of the first run's)")  # fmt: skip
    print("| documents | changed | deleted | " + " | ".join(stages) + " | total | peak MiB |")
    print("|---:" * (len(stages) + 5) + "|")
    for first, again in zip(firsts, reruns, strict=True):
        cells = [f"{again['documents']:,}", f"{again['documents_changed']:,}",
                 f"{again['documents_vanished']:,}"]  # fmt: skip
        for stage in stages:
            share = again["seconds"][stage] / max(first["seconds"][stage], 0.1)
            cells.append(f"{again['seconds'][stage]} ({share:.0%})")
        total_share = again["total_seconds"] / first["total_seconds"]
        cells.append(f"{again['total_seconds']} ({total_share:.1%})")
        cells.append(f"{again['peak_rss_mib']} (first {first['peak_rss_mib']})")
        print("| " + " | ".join(cells) + " |")
        memory = again["peak_rss_mib"] / first["peak_rss_mib"]
        print(
            f"{again['documents']:,}: re-run {total_share:.1%} of the first run's time "
            f"(target: at most 5%), peak memory x{memory:.2f}; chunks written "
            f"{again['chunks_written']:,}, deleted {again['chunks_deleted']:,}"
        )


def before_store(result: dict[str, Any]) -> int:
    """Peak memory of every stage but the upsert, whose growth is the store's own."""
    return int(result["peak_rss_mib_after"]["embed (pool)"])


if __name__ == "__main__":
    main()
