"""The extract and chunk jobs in the task's own process write what the Spark jobs write.

A small change set is parsed and chunked without Spark (rag_ingest.in_process),
with the same plan and the same parse and chunk functions as the Spark jobs.
Here both run on one source holding every kind of row: documents of several
formats, records, a record id repeated in two files, sensitive data, parse
notes, refused and unparseable files, a document over the chunk limit; then
again after a document and a record file changed, each taking the kept rows
(of files and of records) the other wrote.
Every table must hold the same rows both ways.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from rag_ingest import in_process, spark
from rag_ingest.config import SparkConfig, load_settings
from rag_ingest.extract_plan import list_source, plan_extract
from rag_ingest.run import RunLayout
from tests.documents import docx_bytes, eml_bytes, xlsx_bytes

pytestmark = pytest.mark.slow


def make_source(corpus: Path, office: dict[str, bytes]) -> None:
    (corpus / "guide").mkdir(parents=True)
    for n in range(6):
        body = "\n\n".join(f"Paragraph {p} of page {n} about vector search." for p in range(12))
        (corpus / "guide" / f"page-{n}.md").write_text(f"# Page {n}\n\n{body}\n")
    (corpus / "guide" / "long.md").write_text(
        "# Long\n\n" + "\n\n".join(f"Section text number {p} " * 30 for p in range(40))
    )
    (corpus / "contact.md").write_text("# Contact\n\nWrite to jane.doe@example.com any day.\n")
    (corpus / "outside.md").write_text('# Outside\n\nBefore.\n\n--8<-- "../../etc/passwd"\n')
    for name, data in office.items():
        (corpus / name).write_bytes(data)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 not really a pdf")
    (corpus / "empty.md").write_text("")
    records = [
        {"_id": f"r{n}", "title": f"Record {n}", "text": f"Record text {n}."} for n in range(5)
    ]
    (corpus / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    (corpus / "b.jsonl").write_text(json.dumps(records[2]) + "\n")  # r2 again: duplicate_id
    os.symlink(corpus / "contact.md", corpus / "link.md")
    for path in corpus.rglob("*"):  # the same listing each time the source is made
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)


def write_config(state: Path, corpus: Path) -> Path:
    config = state / "rag_ingest.yaml"
    config.write_text(
        f"""\
sources:
  - name: docs
    location: {corpus}
    glob: "**/*"
    max_chunks_per_document: 8  # long.md is over it: a chunk refusal
    parsing:
      reuse_min_files: 1  # rows are kept, so the second run takes them
sensitive_data:
  detect: [email, payment_card]
chunking:
  max_tokens: 120
  overlap_tokens: 16
embedding:
  shard_size: 16
store:
  path: {state / "lancedb"}
paths:
  staging: {state / "staging"}
  reports: {state / "reports"}
"""
    )
    return config


def sorted_rows(path: Path, by: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    table = pq.read_table(path)
    rows = table.sort_by([(column, "ascending") for column in by]).to_pylist()
    return [{k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items()} for row in rows]


def tables(
    layout: RunLayout, kept_rows: Path, listed_keys: set[str]
) -> dict[str, list[dict[str, Any]]]:
    # The kept rows the next run can take: rows of changed or deleted files may stay
    # behind in them, never read again (rag_ingest.extract_plan.ExtractPlan.appends_rows).
    live = [
        row for row in sorted_rows(kept_rows, ["uri", "doc_id"]) if row["reuse_key"] in listed_keys
    ]
    return {
        "documents": sorted_rows(layout.documents, ["doc_id"]),
        "quarantine": sorted_rows(layout.quarantine, ["uri", "doc_id"]),
        "sensitive": sorted_rows(layout.sensitive, ["doc_id"]),
        "kept file rows": live,
    }


def extract(config: Path, run: str, engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = load_settings(str(config))
    source = settings.source("docs")
    location = settings.source_location(source)
    layout = RunLayout.of(settings.staging_dir, "docs", run)
    layout.root.mkdir(parents=True)
    listing = list_source(settings, source, location)
    plan = plan_extract(settings, source, listing)
    if engine == "task":
        counts = in_process.extract(settings, source, str(layout.root), plan)
    else:
        session = spark.get_session(settings.spark)
        counts = spark.extract_job(session, settings, source, str(layout.root), plan=plan)
    return counts, tables(layout, plan.kept_rows, {key for key in listing.keys if key})


def chunk(config: Path, run: str, engine: str) -> dict[str, Any]:
    settings = load_settings(str(config))
    source = settings.source("docs")
    layout = RunLayout.of(settings.staging_dir, "docs", run)
    ids = pq.read_table(layout.documents, columns=["doc_id"])
    layout.to_chunk.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(ids, layout.to_chunk)
    if engine == "task":
        counts = in_process.chunk(settings, source, str(layout.root))
    else:
        counts = spark.chunk_job(
            spark.get_session(settings.spark), settings, source, str(layout.root)
        )
    files = sorted(layout.chunks.glob("*.parquet"))
    # Every chunk file fits one embedding shard (the embed stage maps shards onto files).
    assert all(pq.read_metadata(f).num_rows <= settings.embedding.shard_size for f in files)
    return {
        "counts": counts,
        "chunks": sorted_rows(layout.chunks, ["chunk_id"]),
        "refused": sorted_rows(layout.chunk_quarantine, ["doc_id"]),
    }


def test_in_process_and_spark_jobs_write_the_same_rows(tmp_path: Path) -> None:
    # One path for the source (rows and reuse keys name it), made afresh for each order.
    corpus = tmp_path / "corpus"
    # Made once: the writers stamp the time into the files.
    office = {"notes.docx": docx_bytes(), "orders.xlsx": xlsx_bytes(), "mail.eml": eml_bytes()}
    orders = ("spark", "spark"), ("task", "task"), ("spark", "task"), ("task", "spark")
    results: dict[tuple[str, str], list[Any]] = {}
    for first, second in orders:
        state = tmp_path / f"{first}-{second}"
        state.mkdir()
        shutil.rmtree(corpus, ignore_errors=True)
        make_source(corpus, office)
        config = write_config(state, corpus)
        one = extract(config, "one", first)
        chunks_one = chunk(config, "one", first)
        page = corpus / "guide" / "page-3.md"
        page.write_text(page.read_text() + "\nAn edited closing line.\n")
        # A changed record file: its unchanged records take their kept rows.
        records = corpus / "a.jsonl"
        lines = records.read_text().splitlines()
        lines[3] = json.dumps({"_id": "r3", "text": "Record text 3, edited."})
        records.write_text("\n".join([*lines, json.dumps({"_id": "r9", "text": "New."})]))
        for changed in (page, records):
            os.utime(changed, (1_800_000_000, 1_800_000_000))  # the same in every copy
        two = extract(config, "two", second)
        chunks_two = chunk(config, "two", second)
        results[(first, second)] = [one, chunks_one, two, chunks_two]
    reference = results[("spark", "spark")]
    # In the task's process the second run added its rows to the kept ones (the changed
    # files' old rows stay behind, unread: the page's and the 5 records'); Spark rewrote them.
    live = len(reference[2][1]["kept file rows"])
    for order, behind in ((("task", "task"), 1 + 5), (("spark", "spark"), 0)):
        (rows,) = (tmp_path / "-".join(order) / "staging" / "docs" / "parse-cache").glob(
            "*-file-rows"
        )
        assert pq.read_table(rows).num_rows == live + behind, order
    one_counts, one_tables = reference[0]
    # The source really holds every kind of row this test is about.
    reasons = {row["reason"] for row in one_tables["quarantine"]}
    assert {"duplicate_id", "not_followed", "empty_file"} <= reasons, reasons
    assert one_tables["sensitive"] and one_counts["includes_dropped"] == 1
    assert reference[1]["refused"] and reference[1]["counts"]["chunks"] > 16
    assert reference[2][0]["files_parsed"] < one_counts["files_parsed"]
    # a.jsonl's r0, r1, r2 and r4 took their kept rows (b.jsonl, unchanged, is not counted).
    assert reference[2][0]["records_reused"] == 4 and one_counts["records_reused"] == 0
    steps = ("first extract", "first chunk", "second extract", "second chunk")
    for order, result in results.items():
        for step, expected, found in zip(steps, reference, result, strict=True):
            assert found == expected, f"{order}, {step}: {first_difference(expected, found)}"


def first_difference(expected: Any, found: Any, where: str = "") -> str:
    """Where two nested values first differ, for a readable failure."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found), key=str):
            if expected.get(key) != found.get(key):
                return first_difference(expected.get(key), found.get(key), f"{where}.{key}")
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        if len(expected) != len(found):
            return f"{where}: {len(expected)} rows against {len(found)}"
        for n, (a, b) in enumerate(zip(expected, found, strict=True)):
            if a != b:
                return first_difference(a, b, f"{where}[{n}]")
    return f"{where}: {expected!r:.300} against {found!r:.300}"


def test_the_in_process_writer_is_readable_by_spark(tmp_path: Path) -> None:
    """Timestamps as Spark writes them (INT96), so either engine reads the other's tables."""
    from rag_ingest.parquet_io import SparkFolderWriter

    schema = in_process.DOCUMENTS
    folder = tmp_path / "documents"
    with SparkFolderWriter(folder, schema) as writer:
        writer.write(schema.empty_table())
    assert (folder / "_SUCCESS").exists() and pq.read_table(folder).schema.equals(schema)
    read = spark.get_session(SparkConfig()).read.parquet(str(folder))
    assert read.columns == schema.names and read.count() == 0


def test_a_record_drop_with_few_changed_records_is_parsed_in_the_tasks_process(
    tmp_path: Path,
) -> None:
    """Record files far over spark.in_process_max_bytes, every one of them changed: while
    the records parsed afresh fit the limit, the extract task takes the others from the
    kept rows itself; once they do not, Spark parses. Either way the documents are the
    ones a full parse writes."""
    from rag_ingest import lease, pipeline

    corpus, state = tmp_path / "corpus", tmp_path / "state"
    corpus.mkdir()
    state.mkdir()
    files = {
        f"drop-{n}.jsonl": [
            {"_id": f"d{n}-{r}", "title": f"Record {r}", "text": f"Record {r} of drop {n}. " * 4}
            for r in range(300)
        ]
        for n in range(4)
    }

    def write_drops() -> None:
        for name, records in files.items():
            (corpus / name).write_text("".join(json.dumps(r) + "\n" for r in records))

    write_drops()
    limit = 20_000  # each drop is about 40 KB
    config = state / "rag_ingest.yaml"
    config.write_text(
        f"sources:\n  - name: drops\n    location: {corpus}\n    glob: '*.jsonl'\n"
        "    parsing:\n      reuse_min_files: 1\n"
        f"spark:\n  in_process_max_bytes: {limit}\n"
        f"store:\n  path: {state / 'lancedb'}\n"
        f"paths:\n  staging: {state / 'staging'}\n  reports: {state / 'reports'}\n"
    )
    settings = load_settings(str(config))

    def extract_run(run: str, full_resync: bool = False) -> tuple[Any, list[dict[str, Any]]]:
        result = pipeline.extract.run(str(config), "drops", run, full_resync=full_resync)
        lease.release(settings.staging_dir, "drops", run)
        layout = RunLayout.of(settings.staging_dir, "drops", run)
        return result, sorted_rows(layout.documents, ["doc_id"])

    first, _ = extract_run("first")
    assert first.engine == "spark" and first.documents == 1200
    # A record edited, one deleted and one added in every drop: 12 fresh lines.
    for n, records in enumerate(files.values()):
        records[n * 7]["text"] = f"Edited record of drop {n}."
        del records[100]
        records.append({"_id": f"d{n}-new", "text": f"A new record in drop {n}."})
    write_drops()
    few, documents = extract_run("few")
    _, reference = extract_run("few-full", full_resync=True)
    assert few.engine == "task" and few.files_parsed == 4
    assert few.records_reused == 4 * 298 and documents == reference
    # Half the records edited: over the limit, so Spark parses them.
    for records in files.values():
        for record in records[::2]:
            record["text"] += " Edited again."
    write_drops()
    many, documents = extract_run("many")
    _, reference = extract_run("many-full", full_resync=True)
    assert many.engine == "spark" and documents == reference
    assert many.records_reused == 4 * 150  # Spark takes the unchanged half too


def test_kept_rows_that_change_between_finding_and_writing_fail_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept rows a record file takes are found by position and written later: if the
    kept rows were not the same rows then, nothing wrong is written."""
    from rag_ingest import lease, pipeline
    from rag_ingest.record_rows import RecordReuse

    corpus, state = tmp_path / "corpus", tmp_path / "state"
    corpus.mkdir()
    state.mkdir()
    records = [{"_id": f"r{n}", "text": f"Record number {n}."} for n in range(40)]
    drop = corpus / "drop.jsonl"
    drop.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = write_config(state, corpus)
    settings = load_settings(str(config))
    source = settings.source("docs")

    def run(name: str) -> dict[str, Any]:
        layout = RunLayout.of(settings.staging_dir, "docs", name)
        layout.root.mkdir(parents=True)
        listing = list_source(settings, source, settings.source_location(source))
        plan = plan_extract(settings, source, listing)
        return in_process.extract(settings, source, str(layout.root), plan)

    assert run("one")["documents"] == 40
    records[5]["text"] = "Edited."
    drop.write_text("".join(json.dumps(r) + "\n" for r in records))
    read = RecordReuse.kept_table

    def reordered(self: RecordReuse, uri: str, columns: list[str] | None = None) -> Any:
        table = read(self, uri, columns)
        return (
            table
            if columns is not None or table is None
            else table.take(list(reversed(range(table.num_rows))))
        )

    monkeypatch.setattr(RecordReuse, "kept_table", reordered)
    with pytest.raises(OSError, match="changed while they were read"):
        run("two")
    # The extract task then parses with Spark: the kept rows only ever save time.
    result = pipeline.extract.run(str(config), "docs", "three")
    lease.release(settings.staging_dir, "docs", "three")
    assert result.engine == "spark" and result.documents == 40
    texts = {row["doc_id"]: row["text"] for row in sorted_rows(
        RunLayout.of(settings.staging_dir, "docs", "three").documents, ["doc_id"])}  # fmt: skip
    assert sorted(texts.values()) == sorted(r["text"] for r in records)
