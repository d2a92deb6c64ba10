"""The extract and chunk jobs in the task's own process, for a small change set.

The same plan (rag_ingest.extract_plan) and the same parse and chunk functions
(extract.parse_files, chunk_rows.chunk_documents) as the Spark jobs in
rag_ingest.spark, and the same rows out; only the table work around them is
pyarrow instead of Spark, so no JVM and no session start-up (about 14 s a job
on these machines) is paid for a run that parses a few files. The kept rows
of unchanged files are streamed in batches: memory holds one batch of them
and the change set, whatever the size of the source.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from rag_ingest import buckets, parse_cache
from rag_ingest.chunk_rows import CHUNK_JOB_SCHEMA, chunk_batches
from rag_ingest.document_rows import (
    CONTENT_COLUMNS,
    PARSED_SCHEMA,
    RECORD_DIGEST,
    RECORD_REUSED,
    REUSE_COLUMNS,
    REUSE_KEY,
)
from rag_ingest.extract import LISTING_SCHEMA, TakenFile
from rag_ingest.extract_plan import ExtractPlan, parse_batches
from rag_ingest.parquet_io import (
    SparkFolderWriter,
    arrow_schema,
    background_writes,
    read_ids,
)
from rag_ingest.parsing.notes import parse_notes_summary
from rag_ingest.record_rows import FreshBudget, RecordReuse
from rag_ingest.run import RunLayout

if TYPE_CHECKING:
    from rag_ingest.config import Settings, SourceConfig

PARSED = arrow_schema(PARSED_SCHEMA)
DOCUMENTS = pa.schema(
    [f for f in PARSED if f.name not in ("error_reason", "error_detail", *REUSE_COLUMNS)]
)
FINDINGS = arrow_schema("uri string, doc_id string, findings string")
QUARANTINE = arrow_schema("uri string, doc_id string, stage string, reason string, detail string")
CHUNK_ROWS = arrow_schema(CHUNK_JOB_SCHEMA)
CHUNKS = pa.schema([f for f in CHUNK_ROWS if f.name != "refused"])
_BATCH_ROWS = 16_000
_CHUNK_BATCH_ROWS = 500  # spark.sql.execution.arrow.maxRecordsPerBatch (rag_ingest.spark)


def extract(
    settings: Settings,
    source: SourceConfig,
    run_dir: str,
    plan: ExtractPlan,
    budget: FreshBudget | None = None,
) -> dict[str, Any]:
    """The extract job without Spark: documents/, quarantine/, sensitive/ and the kept
    file rows, as rag_ingest.spark.extract_job writes them.

    The kept rows a changed record file takes again stay Arrow rows (never Python
    objects): a daily drop that edits 1% of a large record file parses that 1%.
    With `budget`, parsing more fresh bytes than it holds raises ChangeSetTooLarge
    before anything is written (the caller then runs the Spark job).
    """
    layout = RunLayout(Path(run_dir))
    taken: dict[str, TakenFile] = {}
    parse = parse_batches(settings, source, plan.location, plan.record_reuse, taken, budget)
    fresh = pa.concat_tables(
        [PARSED.empty_table()]
        + [
            pa.Table.from_pandas(frame, schema=PARSED, preserve_index=False)
            for frame in parse(iter([_listing(plan)]))
        ]
    )
    parsed = _ParsedRows(fresh, taken, plan.record_reuse)
    reused = _ReusedRows(plan)
    fresh_rows = plan.kept_rows.with_name(plan.kept_rows.name + ".new")
    next_run = _NextRunRows(fresh_rows, plan.appends_rows) if plan.keep_rows else None
    if next_run is not None and plan.appends_rows:
        parse_cache.link_file_rows(plan.kept, fresh_rows)
    outputs = _write_outputs(layout, next_run, parsed, reused, {})
    if outputs.first_uri_of_repeated_ids:  # rare: written again, each id kept once
        outputs = _write_outputs(layout, None, parsed, reused, outputs.first_uri_of_repeated_ids)
    if plan.keep_rows:
        parse_cache.replace_file_rows(plan.kept, fresh_rows, plan.record_code)
    return {
        "files_listed": len(plan.files),
        "files_parsed": len(plan.to_parse),
        **outputs.counts,
        **parse_notes_summary(outputs.noted),
    }


class _ParsedRows:
    """This run's rows: the ones parsed afresh, then, file by file, the kept rows each
    changed record file took again (read from the kept rows when they are written, so
    memory holds one file's, not the source's)."""

    def __init__(
        self, fresh: pa.Table, taken: dict[str, TakenFile], reuse: RecordReuse | None
    ) -> None:
        self.fresh, self.taken, self.reuse = fresh, taken, reuse

    def batches(self) -> Iterator[pa.Table]:
        yield self.fresh
        for uri, file in self.taken.items():
            assert self.reuse is not None  # only a RecordReuse finds kept rows
            kept = self.reuse.kept_table(uri)
            if kept is None:  # read a moment ago; unreadable now means a broken cache
                raise OSError(f"the kept rows of {uri} could not be read again")
            positions, digests = file.positions, file.digests
            for start in range(0, len(positions), _BATCH_ROWS):  # a copy a slice, not a file
                rows = kept.take(positions.slice(start, _BATCH_ROWS))
                # The same rows as when they were found, or the kept rows changed meanwhile.
                found = digests.slice(start, _BATCH_ROWS)
                if not pc.all(pc.equal(rows[RECORD_DIGEST], found)).as_py():
                    raise OSError(f"the kept rows of {uri} changed while they were read")
                yield _as_taken(rows, file)


def _as_taken(rows: pa.Table, file: TakenFile) -> pa.Table:
    """Kept rows as this run's rows of their file: its size, modified time and reuse
    key now, and marked as taken again (the run report counts them)."""
    count = rows.num_rows
    for name, column in (
        ("size", pa.repeat(pa.scalar(file.size, pa.int64()), count)),
        (
            "modified_at",
            pa.repeat(pa.scalar(file.modified_at, PARSED.field("modified_at").type), count),
        ),
        (REUSE_KEY, pa.repeat(pa.scalar(file.reuse_key, pa.string()), count)),
        (RECORD_REUSED, pa.repeat(pa.scalar(True, pa.bool_()), count)),
    ):
        rows = rows.set_column(rows.schema.get_field_index(name), name, column)
    return rows


@dataclass(frozen=True)
class _NextRunRows:
    """Where the rows kept for the next run go: the folder, and whether the kept ones are
    already there (linked), so only the parsed rows are added, as one more file."""

    folder: Path
    appends: bool


@dataclass
class _Outputs:
    counts: dict[str, int]
    noted: list[tuple[str, str]]  # (uri, parse notes) of the documents with notes
    first_uri_of_repeated_ids: dict[str, str]


def _write_outputs(
    layout: RunLayout,
    next_run_rows: _NextRunRows | None,
    parsed: _ParsedRows,
    reused: _ReusedRows,
    first_uri: dict[str, str],
) -> _Outputs:
    """documents/, sensitive/ and quarantine/ from the parsed and the reused rows, and
    the rows to keep for the next run (into `next_run_rows`, when given). Ids are
    checked as `first_uri` says; the ids found repeated come back, so a pass that
    found some can be made again with them."""
    ids = _IdCheck(first_uri)
    counts = dict.fromkeys(
        ("documents", "quarantined", "documents_with_sensitive_data", "records_reused"), 0
    )
    noted: list[tuple[str, str]] = []
    seen: list[pa.Table] = []
    with ExitStack() as stack:
        documents, findings, quarantine = (
            stack.enter_context(SparkFolderWriter(folder, schema))
            for folder, schema in (
                (layout.documents, DOCUMENTS),
                (layout.sensitive, FINDINGS),
                (layout.quarantine, QUARANTINE),
            )
        )
        next_run, appends = None, False
        if next_run_rows is not None:
            appends = next_run_rows.appends
            if not appends:
                shutil.rmtree(next_run_rows.folder, ignore_errors=True)
            # A name of its own: appended beside the kept files, it must not replace one.
            name = f"part-{uuid.uuid4().hex[:12]}-{{:05d}}.parquet"
            next_run = stack.enter_context(
                background_writes(
                    stack.enter_context(
                        SparkFolderWriter(
                            next_run_rows.folder, PARSED, name=name, empty_file=not appends
                        )
                    )
                )
            )
        batches = chain(
            ((batch, True) for batch in parsed.batches()),
            ((batch, False) for batch in reused.batches()),
        )
        for batch, this_run in batches:
            # The rows for the next run as parsed, before the id check.
            if next_run is not None and (this_run or not appends):
                kept = _where(batch, pc.is_valid(batch[REUSE_KEY]))
                flag = kept.schema.get_field_index(RECORD_REUSED)  # this run's, not the next's
                next_run.write(
                    kept.set_column(flag, RECORD_REUSED, pa.nulls(len(kept), pa.bool_()))
                )
            batch = ids.apply(batch)
            ok = pc.is_null(batch["error_reason"])
            good, bad = _where(batch, ok), _where(batch, pc.invert(ok))
            seen.append(good.select(["doc_id", "uri"]))
            documents.write(good)
            found = good.filter(pc.is_valid(good["sensitive"]))
            findings.write(
                pa.table([found["uri"], found["doc_id"], found["sensitive"]], schema=FINDINGS)
            )
            quarantine.write(
                _quarantine_rows(bad, "extract", bad["error_reason"], bad["error_detail"])
            )
            with_notes = good.filter(pc.is_valid(good["parse_notes"]))
            noted += zip(
                with_notes["uri"].to_pylist(), with_notes["parse_notes"].to_pylist(), strict=True
            )
            counts["documents"] += good.num_rows
            counts["quarantined"] += bad.num_rows
            counts["documents_with_sensitive_data"] += found.num_rows
            counts["records_reused"] += pc.sum(batch[RECORD_REUSED]).as_py() or 0
    repeated = {} if first_uri else _first_uri_of_repeated_ids(pa.concat_tables(seen))
    return _Outputs(counts, noted, repeated)


def _where(table: pa.Table, mask: pa.ChunkedArray) -> pa.Table:
    """The rows where `mask` holds, without a copy when all or none do (the usual case:
    a filter copies every column, text included, even to keep every row)."""
    kept = pc.sum(mask).as_py() or 0
    if kept == table.num_rows:
        return table
    return table.slice(0, 0) if kept == 0 else table.filter(mask)


def _listing(plan: ExtractPlan) -> pd.DataFrame:
    """The files to parse as the batch Spark hands parse_files (naive UTC timestamps)."""
    columns = [column.split()[0] for column in LISTING_SCHEMA.split(", ")]
    frame = pd.DataFrame(plan.to_parse, columns=columns)
    frame["modified_at"] = pd.to_datetime(frame["modified_at"], utc=True).dt.tz_localize(None)
    frame["size"] = frame["size"].astype("int64")
    return frame


class _ReusedRows:
    """The kept rows of the files this run did not parse, read in batches."""

    def __init__(self, plan: ExtractPlan) -> None:
        self.dataset = (
            ds.dataset(str(plan.kept_rows), format="parquet", schema=PARSED)
            if plan.reused
            else None
        )
        # The kept rows are the last run's, so the few keys dropped since pick out
        # what is not reused (a filter on the many reused keys costs a hash a row).
        dropped = pa.array(plan.dropped, pa.string())
        self.filter = ~pc.field(REUSE_KEY).isin(dropped) if plan.dropped else None

    def batches(self) -> Iterator[pa.Table]:
        if self.dataset is None:
            return
        for batch in self.dataset.to_batches(filter=self.filter, batch_size=_BATCH_ROWS):
            yield pa.Table.from_batches([batch])


def _first_uri_of_repeated_ids(documents: pa.Table) -> dict[str, str]:
    """For each id more than one document (doc_id, uri) holds, the first uri holding it."""
    if len(pc.unique(documents["doc_id"])) == documents.num_rows:  # the usual case
        return {}
    grouped = documents.group_by("doc_id").aggregate([("uri", "count"), ("uri", "min")])
    repeated = grouped.filter(pc.greater(grouped["uri_count"], 1))
    return dict(zip(repeated["doc_id"].to_pylist(), repeated["uri_min"].to_pylist(), strict=True))


class _IdCheck:
    """One document per id, as the Spark job's _first_of_each_id: the first uri keeps
    it, every other file holding the id is quarantined as `duplicate_id`."""

    def __init__(self, first_uri: dict[str, str]) -> None:
        self.first_uri = first_uri
        self.kept: set[str] = set()

    def apply(self, batch: pa.Table) -> pa.Table:
        if not self.first_uri:
            return batch
        ok = pc.is_null(batch["error_reason"])
        candidates = pc.and_(ok, pc.is_in(batch["doc_id"], pa.array(list(self.first_uri))))
        if not pc.any(candidates).as_py():
            return batch
        rows = batch.to_pylist()
        for row in rows:
            first = self.first_uri.get(row["doc_id"]) if row["error_reason"] is None else None
            if first is None:
                continue
            if row["uri"] == first and row["doc_id"] not in self.kept:
                self.kept.add(row["doc_id"])
                continue
            row.update(dict.fromkeys(CONTENT_COLUMNS))
            row.update(
                error_reason="duplicate_id", error_detail=f"the same id is kept from {first}"
            )
        return pa.Table.from_pylist(rows, schema=batch.schema)


def _rebatched(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of `tables` again, `rows` a table (the last one fewer)."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows)
            pending, held = [whole.slice(rows)], whole.num_rows - rows
    if held:
        yield pa.concat_tables(pending)


def _quarantine_rows(
    rows: pa.Table, stage: str, reason: pa.ChunkedArray, detail: pa.ChunkedArray
) -> pa.Table:
    return pa.table(
        [
            rows["uri"],
            rows["doc_id"],
            pa.array([stage] * rows.num_rows, pa.string()),
            reason,
            detail,
        ],
        schema=QUARANTINE,
    )


def chunk(settings: Settings, source: SourceConfig, run_dir: str) -> dict[str, int]:
    """The chunk job without Spark: chunks/ (files of at most one embedding shard) and
    the chunk quarantine, as rag_ingest.spark.chunk_job writes them."""
    layout = RunLayout(Path(run_dir))
    wanted = pa.array(read_ids(layout.to_chunk, "doc_id"), pa.string())
    # One file after another (no read-ahead piling up text), in frames of the batch size
    # Spark hands the chunker, however few of each read batch are wanted.
    documents = buckets.stream_rows_with(layout.documents, "doc_id", wanted)
    frames = (table.to_pandas() for table in _rebatched(documents, _CHUNK_BATCH_ROWS))
    shutil.rmtree(layout.chunks, ignore_errors=True)
    made = SparkFolderWriter(layout.chunks, CHUNKS, settings.embedding.shard_size)
    refused = SparkFolderWriter(layout.chunk_quarantine, QUARANTINE)
    for frame in chunk_batches(settings, source)(frames):
        rows = pa.Table.from_pandas(frame, schema=CHUNK_ROWS, preserve_index=False)
        is_refusal = pc.is_valid(rows["refused"])
        made.write(rows.filter(pc.invert(is_refusal)))
        over = rows.filter(is_refusal)
        refused.write(_quarantine_rows(over, "chunk", over["refused"], over["section"]))
    # As the Spark job: no chunks/ without a chunk, no chunk quarantine without a refusal.
    for writer in (made, refused):
        if writer.rows:
            writer.close()
        else:
            writer.discard()
    return {"chunks": made.rows, "documents_over_chunk_limit": refused.rows}
