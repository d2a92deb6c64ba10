"""The evaluate task: golden queries against the store this run just wrote."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rag_ingest.config import ConfigError, Settings, SourceConfig
from rag_ingest.run import RunContext
from rag_ingest.stage_results import EvaluationResult
from rag_ingest.stores import open_store

log = logging.getLogger(__name__)


class EvaluationFailed(RuntimeError):
    """The golden queries no longer find their documents (the evaluation gate)."""


def run(config_path: str | None, source_name: str, run_id: str) -> EvaluationResult:
    """The evaluation gate.

    Each query is embedded with the run's model and searched in the source;
    recall@k is the share of its expected documents among the top k. Below
    `min_recall` the run fails (on_failure: fail) or is only reported (warn).
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    gate = ctx.source.evaluation
    if gate is None:
        raise ConfigError(f"source {source_name!r} has no `evaluation` golden set configured")
    recall, misses, queries = golden_recall(ctx.settings, ctx.source)
    result = ctx.record(
        EvaluationResult(
            queries=queries,
            k=gate.k,
            recall=round(recall, 4),
            min_recall=gate.min_recall,
            on_failure=gate.on_failure,
            success=recall >= gate.min_recall,
            misses=misses,
            seconds=round(time.perf_counter() - started, 3),
        )
    )
    if not result.success:
        message = (
            f"evaluation gate: mean recall@{gate.k} {recall:.3f} of {queries} golden "
            f"queries is below {gate.min_recall}; "
            + "; ".join(f"{m['query']!r} missed {', '.join(m['missing'])}" for m in misses[:3])
        )
        if gate.on_failure == "fail":
            raise EvaluationFailed(message)
        log.warning("%s (on_failure: warn, the run goes on)", message)
    return result


def golden_recall(
    settings: Settings, source: SourceConfig
) -> tuple[float, list[dict[str, Any]], int]:
    """Mean recall@k of the source's golden set in the store `settings` name, the
    queries embedded with its model and prompt; also the misses and the query count."""
    from rag_ingest.embedding_service import task_embedder
    from rag_ingest.evaluation import golden_missing, load_golden_set, ranked_documents

    gate = source.evaluation
    if gate is None:
        raise ConfigError(f"source {source.name!r} has no `evaluation` golden set configured")
    golden_path = Path(settings.resolve(gate.golden_set))
    try:
        golden = load_golden_set(golden_path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"sources[{source.name}].evaluation.golden_set: {error}") from error
    store = open_store(settings)
    ready = task_embedder(settings.embedding, settings.models_dir, allow_pool=False)
    try:
        vectors = ready.embedder.encode(
            [g.query for g in golden], prompt=settings.embedding.query_prompt
        )
    finally:
        ready.release()
    recalls, misses = [], []
    for item, vector in zip(golden, vectors, strict=True):
        ranked = ranked_documents(store, vector.tolist(), source.name, gate.k, key=lambda u: u)
        missing = golden_missing(ranked, item.expected, gate.k)
        recalls.append(1.0 - len(missing) / len(set(item.expected)))
        if missing:
            misses.append({"query": item.query, "missing": missing, "top": ranked[:3]})
    return sum(recalls) / len(recalls), misses, len(golden)


def dataset_scores(settings: Settings, source: SourceConfig, k: int = 10) -> dict[str, float]:
    """nDCG@k and Recall@k of the source's evaluation dataset (BEIR layout) in the store
    `settings` name, the queries embedded with its model and prompt."""
    from rag_ingest.embedding_service import task_embedder
    from rag_ingest.evaluation import BeirDataset, ranked_documents, score_rankings

    gate = source.evaluation
    if gate is None or gate.dataset is None:
        raise ConfigError(f"source {source.name!r} has no `evaluation.dataset` configured")
    try:
        dataset = BeirDataset.load(settings.resolve(gate.dataset))
    except (OSError, ValueError) as error:
        raise ConfigError(f"sources[{source.name}].evaluation.dataset: {error}") from error
    store = open_store(settings)
    ids = sorted(dataset.queries)
    ready = task_embedder(settings.embedding, settings.models_dir, allow_pool=False)
    try:
        vectors = ready.embedder.encode(
            [dataset.queries[q] for q in ids], prompt=settings.embedding.query_prompt
        )
    finally:
        ready.release()
    rankings = {
        q: ranked_documents(store, v.tolist(), source.name, k)
        for q, v in zip(ids, vectors, strict=True)
    }
    scores = score_rankings(rankings, dataset.qrels, (k,))
    return {name: round(scores[name], 4) for name in (f"ndcg@{k}", f"recall@{k}")}
