"""Access labels from source and record to every stored chunk and back out of search.

Real Spark, model and LanceDB through the pipeline's stages; the MongoDB
side of the filter is in tests/contract (the `$vectorSearch` filter it sends).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rag_ingest import cli
from rag_ingest.config import load_settings
from rag_ingest.embedding import Embedder
from rag_ingest.stores import open_store
from tests.conftest import write_config
from tests.e2e.pipeline_runs import run

pytestmark = pytest.mark.slow

RECORDS = [
    {
        "_id": "pay",
        "title": "Salary bands",
        "text": "Salary bands for 2027 by grade.",
        "acl": ["hr"],
    },
    {"_id": "menu", "title": "Canteen", "text": "The canteen menu changes weekly.", "acl": "staff"},
    {"_id": "faq", "title": "FAQ", "text": "Opening hours of the office are 8 to 18."},
]


def write_records(folder: Path, records: list[dict]) -> None:
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_records(corpus, RECORDS)
    path = write_config(tmp_path, corpus, glob="*.jsonl")  # the source's labels: [public]
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["records"] = {"acl_field": "acl"}
    path.write_text(yaml.safe_dump(document))
    return path


def labels_by_record(config: Path) -> dict[str, list[str]]:
    chunks = open_store(load_settings(config)).fetch("docs", with_vectors=False)
    return {
        uri.rpartition("#")[2]: acl
        for uri, acl in zip(chunks["uri"].to_pylist(), chunks["acl"].to_pylist(), strict=True)
    }


def test_labels_reach_every_chunk_and_search_shows_only_what_a_caller_may_see(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(config, "manual__1")
    assert labels_by_record(config) == {"pay": ["hr"], "menu": ["staff"], "faq": ["public"]}

    settings = load_settings(config)
    store = open_store(settings)
    vector = Embedder(settings.embedding).encode(["salary bands by grade"])[0].tolist()

    def seen(labels: list[str] | None) -> set[str]:
        hits = store.search(vector, k=10, source="docs", labels=labels)
        return {h.uri.rpartition("#")[2] for h in hits}

    assert seen(["public"]) == {"faq"}
    assert seen(["hr", "public"]) == {"pay", "faq"}
    assert seen(None) == {"pay", "menu", "faq"}

    assert cli.main(["--config", str(config), "search", "salary bands", "--labels", "staff"]) == 0
    out = capsys.readouterr().out
    assert "#menu" in out and "#pay" not in out
    assert cli.main(["--config", str(config), "search", "salary", "--labels", "nobody"]) == 1
    assert "no results that labels nobody may see" in capsys.readouterr().out

    # Revoking: the pay record moves from hr to board. Its chunks are rewritten
    # with the new label (the vector is reused, nothing is embedded) and hr
    # no longer sees it.
    records = [dict(r, acl=["board"]) if r["_id"] == "pay" else r for r in RECORDS]
    write_records(Path(settings.sources[0].location), records)
    counts = run(config, "manual__2")
    assert counts["chunks_embedded"] == 0 and counts["chunks_written"] >= 1
    assert labels_by_record(config) == {"pay": ["board"], "menu": ["staff"], "faq": ["public"]}
    assert seen(["hr"]) == set()
    assert seen(["board"]) == {"pay"}
