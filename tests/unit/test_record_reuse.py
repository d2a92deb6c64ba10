"""Records of a changed JSON Lines file: the kept row of every unchanged line is taken
again, and the rows are the rows a full parse makes, whatever was edited.

The files are made from a seeded random mix of records (plain, with secrets to
redact, with access labels and metadata, with ids repeated, with broken JSON,
without text) and then edited at random: records changed, deleted, inserted,
moved, repeated, and lines broken.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from rag_ingest.document_rows import PARSED_SCHEMA, RECORD_DIGEST, RECORD_REUSED, SensitiveGate
from rag_ingest.extract import ParseLimits, _with_reuse_key, parse_source_file
from rag_ingest.parquet_io import SparkFolderWriter, arrow_schema
from rag_ingest.parsing import RecordFields
from rag_ingest.record_rows import ChangeSetTooLarge, FreshBudget, RecordReuse, TakenRows

FIELDS = RecordFields(metadata_fields=("lang",), acl_field="groups")
GATE = SensitiveGate("redact", ("payment_card", "api_key"), ())
CARD = "4111 1111 1111 1111"
KEPT = " [kept]"
WORDS = "vector index chunk token embed drift source shard quality gate".split()


def record_line(rng: random.Random, n: int) -> str:
    draw = rng.random()
    if draw < 0.03:
        return '{"_id": "broken' + str(n)  # not JSON
    if draw < 0.05:
        return json.dumps({"_id": f"r{n}", "title": "no text"})
    record: dict[str, Any] = {"_id": f"r{n}", "title": f"Title {n}"}
    record["text"] = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
    if rng.random() < 0.1:
        record["text"] += f" Card {CARD} on file."
    if rng.random() < 0.2:
        record["groups"] = rng.choice([["staff"], "a,b", [], None])
    if rng.random() < 0.2:
        record["lang"] = rng.choice(["en", "de"])
    return json.dumps(record)


def edited(rng: random.Random, lines: list[str], next_id: int) -> list[str]:
    """The lines after a random day of edits."""
    out: list[str] = []
    for line in lines:
        draw = rng.random()
        if draw < 0.08:  # deleted
            continue
        if draw < 0.16:  # changed in place
            out.append(record_line(rng, int(rng.random() * 1000)))
            continue
        out.append(line)
        if draw < 0.20:  # a line repeated: its id is then a duplicate
            out.append(line)
        elif draw < 0.24:  # a new record after it
            out.append(record_line(rng, next_id))
            next_id += 1
    rng.shuffle(out) if rng.random() < 0.3 else None  # records moved about
    return out


def parse(path: Path, records: RecordReuse | None) -> list[dict[str, Any]]:
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    return parse_source_file(
        "src", str(path), path.name, path.stat().st_size, when, ParseLimits(10**8), FIELDS,
        ("public",), gate=GATE, records=records,
    )  # fmt: skip


def keep(rows: list[dict[str, Any]], folder: Path) -> None:
    """The rows as the extract job keeps them for the next run."""
    schema = arrow_schema(PARSED_SCHEMA)
    with SparkFolderWriter(folder, schema) as writer:
        writer.write(pa.Table.from_pylist(_with_reuse_key(rows, "file-key"), schema=schema))


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("reuse_key", RECORD_REUSED)} for row in rows]


@pytest.mark.parametrize("seed", range(12))
def test_a_changed_record_file_parses_to_the_rows_a_full_parse_makes(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    lines = [record_line(rng, n) for n in range(rng.randint(150, 400))]
    path.write_text("\n".join(lines) + "\n")
    code = f"settings-{seed}"
    first = parse(path, RecordReuse(code, None))
    # Marked, so the rows taken from the kept ones are told from the rows parsed again.
    keep([{**row, "title": f"{row['title']}{KEPT}"} for row in first], kept)
    path.write_text("\n".join(edited(rng, lines, 10_000)) + "\n")
    reused = parse(path, RecordReuse(code, str(kept)))
    fresh = parse(path, RecordReuse(code, None))
    taken = [row for row in reused if row["title"] and row["title"].endswith(KEPT)]
    for row in taken:
        row["title"] = row["title"].removesuffix(KEPT)
    assert comparable(reused) == comparable(fresh)
    assert len(taken) > len(reused) / 2  # most records were unchanged, and taken again
    # Each taken row says so (the run report counts them), and no other does.
    assert [row[RECORD_REUSED] is True for row in reused] == [row in taken for row in reused]
    assert {row[RECORD_DIGEST] for row in taken} <= {row[RECORD_DIGEST] for row in first}
    # The edits made every kind of row; a document row, and only it, carries its digest.
    reasons = {row["error_reason"] for row in fresh}
    assert {None, "duplicate_id", "invalid_json", "missing_text"} <= reasons, reasons
    assert all((row[RECORD_DIGEST] is None) == (row["error_reason"] is not None) for row in fresh)
    assert any(row["sensitive"] for row in taken) and any(row["acl"] == [] for row in fresh)


def test_unchanged_lines_take_their_kept_rows_and_only_they_do(tmp_path: Path) -> None:
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    records = [{"_id": f"r{n}", "text": f"Record number {n}."} for n in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = parse(path, RecordReuse("code", None))
    # Marked, so a row taken from the kept ones is told from a row parsed again.
    keep([{**row, "text": row["text"] + " [kept]"} for row in rows], kept)
    records[2]["text"] = "Record number 2, edited."
    records.append({"_id": "r6", "text": "A new record."})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    texts = {
        row["relative_path"]: row["text"] for row in parse(path, RecordReuse("code", str(kept)))
    }
    assert texts == {
        "record:r0": "Record number 0. [kept]",
        "record:r1": "Record number 1. [kept]",
        "record:r2": "Record number 2, edited.",
        "record:r3": "Record number 3. [kept]",
        "record:r4": "Record number 4. [kept]",
        "record:r5": "Record number 5. [kept]",
        "record:r6": "A new record.",
    }
    # Other settings or parser code: no kept row fits, every record is parsed.
    again = parse(path, RecordReuse("other code", str(kept)))
    assert not any(row["text"].endswith("[kept]") for row in again)
    # The kept row takes the file's size and modified time of this run.
    sizes = {row["size"] for row in parse(path, RecordReuse("code", str(kept)))}
    assert sizes == {path.stat().st_size}


def test_unreadable_kept_rows_mean_a_full_parse_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    path.write_text('{"_id": "a", "text": "Alpha."}\n{"_id": "b", "text": "Beta."}\n')
    fresh = parse(path, RecordReuse("code", None))
    keep(fresh, kept)
    for part in kept.glob("*.parquet"):
        part.write_bytes(b"PAR1 not parquet at all")
    assert comparable(parse(path, RecordReuse("code", str(kept)))) == comparable(fresh)
    assert "kept rows are unreadable" in caplog.text
    # Nothing kept yet (a first run): parsed, and nothing read.
    assert comparable(parse(path, RecordReuse("code", str(tmp_path / "none")))) == comparable(fresh)


def test_parquet_record_files_are_parsed_whole(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path, kept = tmp_path / "drop.parquet", tmp_path / "kept"
    pq.write_table(pa.table({"_id": ["a", "b"], "text": ["Alpha.", "Beta."]}), path)
    rows = parse(path, RecordReuse("code", None))
    assert [row[RECORD_DIGEST] for row in rows] == [None, None]  # nothing to find again
    keep([{**row, "text": "[kept]"} for row in rows], kept)
    assert [row["text"] for row in parse(path, RecordReuse("code", str(kept)))] == [
        "Alpha.",
        "Beta.",
    ]


def test_a_source_with_large_record_files_keeps_rows_whatever_its_number_of_files(
    tmp_path: Path,
) -> None:
    from rag_ingest import parse_cache
    from rag_ingest.config import load_settings
    from rag_ingest.extract_plan import Listing, plan_extract
    from rag_ingest.sources import SourceFile
    from tests.conftest import write_config

    settings = load_settings(str(write_config(tmp_path, tmp_path / "corpus")))
    source = settings.source("docs")
    location = settings.source_location(source)
    mib = 2**20
    threshold = source.parsing.reuse_min_record_mb * mib

    def plan(sizes: dict[str, int], reparse: bool = False):  # type: ignore[no-untyped-def]
        when = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
        files = [SourceFile(f"/src/{name}", name, size, when) for name, size in sizes.items()]
        listing = Listing(location, files, [f"k-{name}" for name in sizes], {}, "record-code")
        return plan_extract(settings, source, listing, reparse)

    kept_rows = str(parse_cache.file_rows_dir(parse_cache.cache_dir(
        settings.staging_dir, "docs", location)))  # fmt: skip
    large = plan({"a.jsonl": int(threshold * 0.6), "b.ndjson": int(threshold * 0.6)})
    assert large.keep_rows and large.record_reuse == RecordReuse("record-code", kept_rows)
    # No row kept yet (a first run): nothing to take, so no attempt in the task's process.
    assert large.bytes_outside_records == 0 and not large.may_fit_in_process(settings.spark)
    # A full resync parses every record, and keys them for the next run.
    assert plan({"a.jsonl": int(threshold)}, reparse=True).record_reuse == RecordReuse(
        "record-code", None
    )
    # Parquet and documents do not count; below the threshold nothing is kept.
    small = plan({"a.jsonl": int(threshold) - 1, "b.parquet": 10 * mib, "c.md": 10 * mib})
    assert not small.keep_rows and small.record_reuse is None


def parse_taking(path: Path, records: RecordReuse, budget: int | None = None) -> Any:
    """The rows parsed afresh, and the kept rows the file took again (in_process's way)."""
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    taken = TakenRows(None if budget is None else FreshBudget(budget))
    fresh = parse_source_file(
        "src", str(path), path.name, path.stat().st_size, when, ParseLimits(10**8), FIELDS,
        ("public",), gate=GATE, records=records, taken=taken,
    )  # fmt: skip
    kept = records.kept_table(str(path))
    again = [] if kept is None else kept.take(taken.positions).to_pylist()
    return fresh, [{**row, "size": path.stat().st_size, "modified_at": when} for row in again]


def by_identity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(comparable(rows), key=lambda row: (row["uri"], row["error_reason"] or ""))


@pytest.mark.parametrize("seed", range(12))
def test_taken_by_position_the_kept_rows_and_the_fresh_ones_are_a_full_parse(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    lines = [record_line(rng, n) for n in range(rng.randint(150, 400))]
    path.write_text("\n".join(lines) + "\n")
    code = f"settings-{seed}"
    keep(parse(path, RecordReuse(code, None)), kept)
    path.write_text("\n".join(edited(rng, lines, 10_000)) + "\n")
    fresh, again = parse_taking(path, RecordReuse(code, str(kept)))
    full = parse(path, RecordReuse(code, None))
    assert by_identity(fresh + again) == by_identity(full)
    assert len(again) > len(full) / 2 and not any(row[RECORD_REUSED] for row in fresh)
    # Without kept rows nothing is taken, and the fresh rows are the whole parse.
    fresh, again = parse_taking(path, RecordReuse(code, str(tmp_path / "none")))
    assert again == [] and comparable(fresh) == comparable(full)


def test_fresh_lines_are_charged_to_the_budget_and_going_over_it_is_no_files_fault(
    tmp_path: Path,
) -> None:
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    lines = [json.dumps({"_id": f"r{n}", "text": f"Record number {n}."}) for n in range(50)]
    path.write_text("\n".join(lines) + "\n")
    keep(parse(path, RecordReuse("code", None)), kept)
    lines[7] = json.dumps({"_id": "r7", "text": "Edited."})
    lines.append(json.dumps({"_id": "r50", "text": "New."}))
    path.write_text("\n".join(lines) + "\n")
    fresh_bytes = len(lines[7]) + len(lines[50])
    budget = FreshBudget(fresh_bytes)
    taken = TakenRows(budget)
    rows = parse_source_file(
        "src", str(path), path.name, path.stat().st_size, None, ParseLimits(10**8), FIELDS,
        records=RecordReuse("code", str(kept)), taken=taken,
    )  # fmt: skip
    assert [row["relative_path"] for row in rows] == ["record:r7", "record:r50"]
    assert len(taken.positions) == 49 and budget.bytes_left == 0
    # One byte less: the whole attempt ends (not a quarantine row for the file).
    with pytest.raises(ChangeSetTooLarge):
        parse_taking(path, RecordReuse("code", str(kept)), budget=fresh_bytes - 1)
    # Every line of a file with no kept rows is fresh.
    with pytest.raises(ChangeSetTooLarge):
        parse_taking(path, RecordReuse("other code", str(kept)), budget=fresh_bytes)


def test_an_attempt_in_process_needs_kept_rows_whose_digests_this_run_can_find(
    tmp_path: Path,
) -> None:
    from rag_ingest import parse_cache
    from rag_ingest.config import SparkConfig
    from rag_ingest.extract_plan import ExtractPlan

    kept = tmp_path / "cache" / "abc"
    rows_dir = parse_cache.file_rows_dir(kept)
    fresh = tmp_path / "cache" / "fresh"
    fresh.mkdir(parents=True)
    (fresh / "_SUCCESS").touch()
    limits = SparkConfig(in_process_max_bytes=1000)

    def plan(to_parse: list[tuple[str, int]], code: str = "code") -> ExtractPlan:
        rows = [
            (f"/src/{name}", name, size, None, None, "", f"k-{name}") for name, size in to_parse
        ]
        return ExtractPlan(
            "/src", [], rows, [], ["k-old"], kept, True,
            record_reuse=RecordReuse(code, str(rows_dir)),
        )  # fmt: skip

    drops = [("a.jsonl", 50_000), ("b.jsonl", 50_000), ("notes.md", 400)]
    assert not plan(drops).may_fit_in_process(limits)  # nothing kept yet
    parse_cache.replace_file_rows(kept, fresh, "code")
    assert parse_cache.kept_record_code(rows_dir) == "code"
    assert plan(drops).bytes_outside_records == 400 and plan(drops).may_fit_in_process(limits)
    # Other settings or parser code: no digest would match, so no attempt.
    assert not plan(drops, code="other code").may_fit_in_process(limits)
    # Over the limit without the record files, or no record file at all: Spark.
    assert not plan([*drops, ("big.pdf", 2000)]).may_fit_in_process(limits)
    assert not plan([("notes.md", 400)]).may_fit_in_process(limits)


def test_the_budget_counts_bytes_not_characters(tmp_path: Path) -> None:
    path, kept = tmp_path / "drop.jsonl", tmp_path / "kept"
    lines = [json.dumps({"_id": f"r{n}", "text": f"Record {n}."}) for n in range(5)]
    path.write_text("\n".join(lines) + "\n")
    keep(parse(path, RecordReuse("code", None)), kept)
    lines[2] = json.dumps({"_id": "r2", "text": "Größe ändern"}, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n")
    budget = FreshBudget(10_000)
    parse_source_file(
        "src", str(path), path.name, path.stat().st_size, None, ParseLimits(10**8), FIELDS,
        records=RecordReuse("code", str(kept)), taken=TakenRows(budget),
    )  # fmt: skip
    assert 10_000 - budget.bytes_left == len(lines[2].encode()) > len(lines[2])
