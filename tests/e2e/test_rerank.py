"""The optional reranking stage: a cross-encoder re-scores the first hits of any mode.

No trained cross-encoder ships offline here, so the test builds one: the
packaged MiniLM weights under a fresh one-logit classification head (random,
so its judgement is meaningless). That checks the mechanism (the model
loads from a local folder, sees the query with each of the top `rerank_top`
hits, and its scores order the answer), not the quality of a reranker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest.config import load_settings
from rag_ingest.search import search
from tests.conftest import write_config
from tests.e2e.pipeline_runs import run

pytestmark = pytest.mark.slow

PAGES = {
    f"page{i}.md": f"# Page {i}\n\nNote {i} is about containers, cranes and ships number {i}.\n"
    for i in range(8)
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """One ingested corpus; its configuration without and with the reranker, and the
    cross-encoder folder (built here: see above)."""
    from sentence_transformers import CrossEncoder

    from rag_ingest.config import PACKAGED_MODEL
    from rag_ingest.embedding import resolve_model_path

    folder = tmp_path_factory.mktemp("rerank")
    cross_encoder = folder / "cross-encoder"
    weights = str(resolve_model_path(PACKAGED_MODEL))
    CrossEncoder(weights, num_labels=1, local_files_only=True).save(str(cross_encoder))
    corpus = folder / "corpus"
    corpus.mkdir()
    for name, text in PAGES.items():
        (corpus / name).write_text(text)
    plain = write_config(folder, corpus)
    run(plain, "first")
    reranking = folder / "reranking.yaml"
    reranking.write_text(
        plain.read_text() + f"search:\n  rerank_model: {cross_encoder}\n  rerank_top: 5\n"
    )
    return plain, reranking, cross_encoder


@pytest.mark.parametrize("mode", ["vector", "lexical", "hybrid"])
def test_the_cross_encoder_orders_the_top_hits_of_every_mode(
    configs: tuple[Path, Path, Path], mode: str
) -> None:
    from sentence_transformers import CrossEncoder

    plain, reranking, cross_encoder = configs
    question = "which note is about cranes and ships"
    top = search(load_settings(plain), question, 5, ["docs"], mode=mode)  # type: ignore[arg-type]
    hits = search(load_settings(reranking), question, 3, ["docs"], mode=mode)  # type: ignore[arg-type]
    judge = CrossEncoder(str(cross_encoder), local_files_only=True)
    judged = judge.predict([(question, hit.text) for hit in top])
    expected = sorted(zip(top, judged, strict=True), key=lambda pair: -float(pair[1]))[:3]
    assert [h.chunk_id for h in hits] == [hit.chunk_id for hit, _ in expected]
    assert [h.score for h in hits] == pytest.approx([float(s) for _, s in expected], abs=1e-4)
    assert {h.chunk_id for h in hits} <= {h.chunk_id for h in top}  # only the top 5 re-scored
