"""Incremental sync on SciFact: a first ingestion, then an unchanged re-run.

    make bench-sync

rag-ingest: the real DAG through `airflow dags test`, twice, into a fresh
LanceDB store; SciFact's corpus.jsonl is a record source with no settings.
LangChain: the indexing API, `index()` with a SQLRecordManager and
incremental cleanup, the same model, the same splitter settings (token-sized
RecursiveCharacterTextSplitter, 240 tokens, 32 overlap) and an embedded
in-memory vector store, also twice. Prints wall time, embeddings computed and
store writes for each run.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rag_ingest.dag_runner import DagTestRunner
from tests.benchmarks.common import SCIFACT, parser_for, save_json, scifact_present, scifact_source

PROJECT = Path(__file__).resolve().parents[2]


def rag_ingest_run(runner: DagTestRunner, reports: Path, log_name: str) -> dict[str, Any]:
    run = runner.test("rag_ingest__scifact", log_name)
    if not run.succeeded:
        raise SystemExit(f"the ingestion run failed; log {run.log}:\n{run.tail()}")
    latest = max(reports.glob("scifact/*.json"), key=lambda p: p.stat().st_mtime)
    counts = json.loads(latest.read_text())["counts"]
    return {
        "seconds": round(run.seconds, 1),
        "embeddings": counts.get("chunks_embedded", 0),
        "store_writes": counts.get("store_writes", 0),
    }


def run_rag_ingest(workdir: Path, max_tokens: int, overlap: int) -> list[dict[str, Any]]:
    config = scifact_source(workdir, max_tokens, overlap)
    runner = DagTestRunner(config, workdir / "airflow", PROJECT / "dags")
    runner.migrate()
    return [rag_ingest_run(runner, workdir / "reports", f"run-{n}.log") for n in (1, 2)]


class CountingEmbeddings:
    """LangChain's Embeddings interface over the same SentenceTransformer, counting texts."""

    def __init__(self, batch_size: int = 64) -> None:
        from rag_ingest.config import EmbeddingConfig
        from rag_ingest.embedding import Embedder

        self.embedder = Embedder(EmbeddingConfig(batch_size=batch_size))
        self.count = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.count += len(texts)
        return self.embedder.encode(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def run_langchain(workdir: Path, max_tokens: int, overlap: int) -> list[dict[str, Any]]:
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    from rag_ingest.config import PACKAGED_MODEL
    from rag_ingest.embedding import resolve_model_path

    Embeddings.register(CountingEmbeddings)
    embeddings = CountingEmbeddings()
    store = InMemoryVectorStore(embedding=embeddings)  # type: ignore[arg-type]
    manager = SQLRecordManager("scifact", db_url=f"sqlite:///{workdir / 'records.sqlite'}")
    manager.create_schema()
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(PACKAGED_MODEL)))
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=max_tokens, chunk_overlap=overlap
    )
    results = []
    for _ in range(2):
        started = time.perf_counter()
        before = embeddings.count
        documents = []
        with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                text = (
                    f"{record['title']}\n\n{record['text']}" if record["title"] else record["text"]
                )
                documents.append(Document(page_content=text, metadata={"source": record["_id"]}))
        chunks = splitter.split_documents(documents)
        outcome = index(chunks, manager, store, cleanup="incremental", source_id_key="source")
        results.append(
            {
                "seconds": round(time.perf_counter() - started, 1),
                "embeddings": embeddings.count - before,
                "store_writes": outcome["num_added"]
                + outcome["num_updated"]
                + outcome["num_deleted"],
            }
        )
    return results


def main() -> int:
    parser = parser_for(__doc__)
    args = parser.parse_args()
    if not scifact_present():
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        ours = run_rag_ingest(workdir, args.max_tokens, args.overlap)
        theirs = run_langchain(workdir, args.max_tokens, args.overlap)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'run':<36}{'wall s':>9}{'embeddings':>12}{'store writes':>14}")
    for name, runs in (("rag-ingest", ours), ("langchain index()", theirs)):
        for label, result in zip(("first run", "unchanged re-run"), runs, strict=True):
            row = f"{name}, {label}"
            print(
                f"{row:<36}{result['seconds']:>9}{result['embeddings']:>12}{result['store_writes']:>14}"
            )
    for name, runs in (("rag-ingest", ours), ("langchain", theirs)):
        share = runs[1]["seconds"] / runs[0]["seconds"]
        print(f"{name}: unchanged re-run took {share:.1%} of the first run")
    ratio = ours[1]["seconds"] / theirs[1]["seconds"]
    print(f"rag-ingest re-run vs langchain re-run: {ratio:.2f}x the time")
    save_json(args.json, {"rag_ingest": ours, "langchain": theirs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
