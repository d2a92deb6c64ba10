"""`rag-ingest eval`: retrieval quality of what the pipeline actually stored.

The dataset's corpus becomes a record source and is ingested by the real
ingestion DAG (`airflow dags test`, a private Airflow home, a fresh LanceDB
store), with the chunking and embedding settings of the caller's
configuration. Every judged query then goes through the store's own search;
documents rank by their best chunk. Nothing here re-implements a stage.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rag_ingest.config import PACKAGED_MODEL, Settings, load_settings
from rag_ingest.dag_runner import DagTestRunner
from rag_ingest.evaluation import (
    BeirDataset,
    markdown_table,
    rank_documents,
    ranked_documents,
    score_rankings,
)
from rag_ingest.reports import latest_run_report
from rag_ingest.stage_results import RunCounts
from rag_ingest.stores.base import SearchMode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalPlan:
    dataset: BeirDataset
    work_dir: Path
    ks: tuple[int, ...]
    subset: int | None = None
    # Each mode is searched over the same ingestion; the first is `metrics`.
    modes: tuple[SearchMode, ...] = ("vector",)

    @property
    def source_name(self) -> str:
        name = re.sub(r"[^a-z0-9_]+", "_", self.dataset.name.lower()).strip("_") or "dataset"
        return name if name[0].isalpha() else f"d_{name}"


def _write_corpus(plan: EvalPlan, keep: set[str] | None) -> Path:
    """The folder the record source reads: the dataset's own, or a subset's copy."""
    if keep is None:
        return plan.dataset.folder
    folder = plan.work_dir / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    with (
        plan.dataset.corpus.open(encoding="utf-8") as lines,
        (folder / "corpus.jsonl").open("w", encoding="utf-8") as out,
    ):
        for line in lines:
            if line.strip() and str(json.loads(line)["_id"]) in keep:
                out.write(line if line.endswith("\n") else line + "\n")
    return folder


def eval_settings_document(settings: Settings, plan: EvalPlan, corpus_dir: Path) -> dict[str, Any]:
    """The configuration of the evaluation run: the caller's chunking, embedding,
    quality and Spark settings; one record source; a private store and staging."""
    corpus_mb = (corpus_dir / "corpus.jsonl").stat().st_size / 2**20
    spark = settings.spark.model_dump(mode="json")
    spark["jobs_dir"] = settings.resolve(settings.spark.jobs_dir)
    quality = settings.quality.model_dump(mode="json")
    quality["suites_dir"] = str(settings.suites_dir)
    # The private Airflow home has no pools; routing is not what is measured.
    embedding = settings.embedding.model_dump(
        mode="json", exclude={"pool", "queue", "worker_service"}
    )
    return {
        "sources": [
            {
                "name": plan.source_name,
                "location": str(corpus_dir),
                "glob": "corpus.jsonl",
                "max_file_mb": max(50.0, round(corpus_mb * 2, 1)),
            }
        ],
        "chunking": settings.chunking.model_dump(mode="json"),
        "embedding": embedding,
        "quality": quality,
        "spark": spark,
        "store": {"kind": "lancedb", "path": str(plan.work_dir / "lancedb")},
        "paths": {
            "staging": str(plan.work_dir / "staging"),
            "reports": str(plan.work_dir / "reports"),
            "models": settings.models_dir,  # ONNX exports are made once, shared
        },
    }


def run_evaluation(
    settings: Settings, plan: EvalPlan, dags_folder: Path | None, say: Any = print
) -> dict[str, Any]:
    """Ingest the corpus through the DAG, search every judged query, score."""
    from rag_ingest.embedding import shared_embedder
    from rag_ingest.stores import open_store

    dataset, ids = plan.dataset, plan.dataset.corpus_ids()
    keep: set[str] | None = None
    if plan.subset is not None:
        dataset, keep = dataset.subset(plan.subset, ids)
    documents = len(keep) if keep is not None else len(ids)
    for owned in ("lancedb", "staging", "reports", "corpus"):
        shutil.rmtree(plan.work_dir / owned, ignore_errors=True)  # a fresh store each time
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    corpus_dir = _write_corpus(plan, keep)
    config_path = plan.work_dir / "rag_ingest.yaml"
    config_path.write_text(yaml.safe_dump(eval_settings_document(settings, plan, corpus_dir)))
    eval_settings = load_settings(config_path)

    runner = DagTestRunner(config_path, plan.work_dir / "airflow", dags_folder)
    say(f"eval: {dataset.name}: {documents} documents, {len(dataset.queries)} judged queries")
    runner.migrate()
    dag_id = eval_settings.source(plan.source_name).dag_id
    say(f"eval: ingesting through {dag_id} (airflow dags test; log {runner.airflow_home})")
    run = runner.test(dag_id, "ingest.log")
    report = latest_run_report(Path(eval_settings.reports_dir), plan.source_name)
    if not run.succeeded or report is None or report.get("status") != "success":
        reason = report.get("reason") if report else "no run report was written"
        cause = run.first_error() or run.tail()
        raise RuntimeError(
            f"the ingestion run of {dag_id} failed ({reason}): {cause}; log {run.log}"
        )
    counts, stages = RunCounts.from_report(report["counts"]), report["stages"]
    embed = stages.get("embed", {})
    stored = open_store(eval_settings).stats(plan.source_name).documents
    if stored < documents:  # scores over part of the corpus would mislead
        reasons = sorted({str(row.get("reason")) for row in report.get("quarantine", [])})
        raise RuntimeError(
            f"the ingestion stored {stored} of the dataset's {documents} documents "
            f"({counts.quarantined} quarantined: {', '.join(reasons) or 'no reason given'}); "
            f"scores over part of the corpus are not an evaluation. Reports: "
            f"{Path(eval_settings.reports_dir) / plan.source_name}"
        )

    say(f"eval: ingested in {run.seconds:.1f} s; searching {len(dataset.queries)} queries")
    store = open_store(eval_settings)
    started = time.perf_counter()
    embedder, _ = shared_embedder(
        eval_settings.embedding, eval_settings.models_dir, allow_pool=False
    )
    query_ids = sorted(dataset.queries)
    prompt = eval_settings.embedding.query_prompt
    vectors = embedder.encode([dataset.queries[q] for q in query_ids], prompt=prompt)
    depth = max(plan.ks)
    metrics_by_mode: dict[str, dict[str, float]] = {}
    seconds_by_mode: dict[str, float] = {}
    for mode in plan.modes:
        mode_started = time.perf_counter()
        rankings = {
            q: ranked_documents(
                store, vector.tolist(), plan.source_name, depth,
                text=dataset.queries[q], mode=mode,
            )
            for q, vector in zip(query_ids, vectors, strict=True)
        }  # fmt: skip
        seconds_by_mode[mode] = round(time.perf_counter() - mode_started, 1)
        metrics_by_mode[mode] = {
            name: round(value, 4)
            for name, value in score_rankings(rankings, dataset.qrels, plan.ks).items()
        }
    model = {
        "model_id": embedder.info.model_id,
        "revision": embedder.info.revision,
        "backend": embedder.backend_name,
        "device": embedder.device,
        "precision": embedder.precision,
    }
    search_seconds = time.perf_counter() - started
    chunks = counts.chunks
    return {
        "dataset": dataset.name,
        "folder": str(dataset.folder),
        "subset": plan.subset,
        "documents": documents,
        "queries": len(query_ids),
        "chunking": eval_settings.chunking.model_dump(mode="json"),
        "embedding": model,
        "ingestion": {
            "dag_id": dag_id,
            "wall_seconds": round(run.seconds, 1),
            "chunks": chunks,
            "chunks_per_second": round(chunks / run.seconds, 1),
            "chunks_embedded": counts.chunks_embedded,
            "model_seconds": embed.get("model_seconds"),
            "stage_seconds": {name: stage.get("seconds") for name, stage in stages.items()},
            "quarantined": counts.quarantined,
            "log": str(run.log),
        },
        "search_seconds": round(search_seconds, 1),
        "modes": list(plan.modes),
        "metrics": metrics_by_mode[plan.modes[0]],
        "metrics_by_mode": metrics_by_mode,
        "search_seconds_by_mode": seconds_by_mode,
        "ks": list(plan.ks),
    }


def markdown_summary(result: dict[str, Any]) -> str:
    ingestion, model, chunking = result["ingestion"], result["embedding"], result["chunking"]
    by_mode, ks = result.get("metrics_by_mode", {"vector": result["metrics"]}), result["ks"]
    scope = f"subset of {result['subset']} documents" if result["subset"] else "whole corpus"
    embed_rate = ""
    if ingestion.get("model_seconds"):
        rate = ingestion["chunks_embedded"] / ingestion["model_seconds"]
        embed_rate = f"; the model alone {rate:.1f} chunks/s"
    return "\n".join(
        [
            f"### Retrieval: {result['dataset']} ({scope})",
            "",
            f"- {result['documents']:,} documents, {result['queries']} judged queries",
            f"- model {model['model_id']} ({model['backend']}, {model['precision']} on "
            f"{model['device']}); chunks of at most {chunking['max_tokens']} tokens, "
            f"{chunking['overlap_tokens']} overlap; documents ranked by their best chunk",
            f"- ingestion through `{ingestion['dag_id']}`: {ingestion['wall_seconds']} s, "
            f"{ingestion['chunks']:,} chunks, {ingestion['chunks_per_second']} chunks/s end to "
            f"end{embed_rate}",
            f"- search: {result['queries']} queries in {result['search_seconds']} s",
            "",
            *[
                line
                for mode, metrics in by_mode.items()
                for line in (f"Search mode **{mode}**:", "", markdown_table(metrics, ks), "")
            ],
        ]
    )


def whole_document_baseline(
    dataset: BeirDataset,
    documents: set[str] | None,
    ks: Sequence[int],
    model_path: str = PACKAGED_MODEL,
    batch_size: int = 32,
) -> dict[str, float]:
    """What the published MTEB figures measure: the bare model, every document
    encoded whole ("title text", BEIR's convention, truncated at the model's
    limit), exact cosine search. The floor a pipeline's chunking must not
    fall below."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from rag_ingest.embedding import resolve_model_path

    with dataset.corpus.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    docs = [r for r in records if documents is None or str(r["_id"]) in documents]
    model = SentenceTransformer(str(resolve_model_path(model_path)), device="cpu")
    doc_vectors = model.encode(
        [f"{r.get('title') or ''} {r['text']}".strip() for r in docs],
        batch_size=batch_size,
        normalize_embeddings=True,
    )
    query_ids = sorted(dataset.queries)
    query_vectors = model.encode(
        [dataset.queries[q] for q in query_ids], batch_size=batch_size, normalize_embeddings=True
    )
    ids = [str(r["_id"]) for r in docs]
    depth = max(ks)
    rankings = {}
    for query_id, scores in zip(
        query_ids, np.asarray(query_vectors) @ np.asarray(doc_vectors).T, strict=True
    ):
        top = np.argsort(-scores, kind="stable")[: depth * 2]
        rankings[query_id] = rank_documents([(ids[i], float(scores[i])) for i in top])[:depth]
    return score_rankings(rankings, dataset.qrels, ks)
