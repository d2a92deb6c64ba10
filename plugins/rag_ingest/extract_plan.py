"""What one extraction will do, decided before anything is parsed.

The listing, the files that changed since the last extraction (all of them
with `reparse`), the reuse keys whose kept rows are taken instead, and the
parse function every file goes through. Both ways of running an extraction
start from the same plan: Spark (rag_ingest.spark, for a large change set)
and the task's own process (rag_ingest.in_process, for a small one).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_ingest import parse_cache
from rag_ingest.document_rows import SensitiveGate
from rag_ingest.extract import ParseLimits, TakenFile, parse_files, source_parsing
from rag_ingest.parsing import RecordFields
from rag_ingest.record_rows import FreshBudget, RecordReuse, is_jsonl
from rag_ingest.sources import SourceFile, list_files

if TYPE_CHECKING:
    import pandas as pd

    from rag_ingest.config import Settings, SourceConfig, SparkConfig

# One listing row (extract.LISTING_SCHEMA order): uri, relative_path, size,
# modified_at, refused, refused_reason, reuse_key.
ListingRow = tuple[str, str, int, Any, str | None, str, str | None]
ParseBatches = Callable[["Iterator[pd.DataFrame]"], "Iterator[pd.DataFrame]"]


@dataclass(frozen=True)
class Listing:
    """A source location's files, each with its reuse key (parse_cache.reuse_keys)."""

    location: str
    files: list[SourceFile]
    keys: list[str | None]  # None for a refused file
    settings: dict[str, Any]  # parse_cache.extract_settings
    record_code: str = ""  # what a record's row depends on besides its line (format_code)

    @property
    def cache_key(self) -> str:
        """The key of the whole extraction (parse_cache.cache_key)."""
        return parse_cache.cache_key(self.files, self.keys, self.settings)


def list_source(settings: Settings, source: SourceConfig, location: str) -> Listing:
    """List `location` and key every file (the only cost of an unchanged file)."""
    files = list_files(location, source.glob, with_refused=True)
    extract_settings = parse_cache.extract_settings(settings, source, location)
    digest, fingerprints = (
        parse_cache.settings_digest(extract_settings), parse_cache.parser_fingerprints()
    )  # fmt: skip
    keys = parse_cache.reuse_keys(files, digest, fingerprints)
    record_code = parse_cache.format_code(digest, fingerprints, "record")
    return Listing(location, files, keys, extract_settings, record_code)


@dataclass(frozen=True)
class ExtractPlan:
    location: str
    files: list[SourceFile]  # every file listed
    to_parse: list[ListingRow]  # the files parsed this run
    reused: list[str]  # reuse keys of files whose kept rows are taken instead
    # Kept keys no file has any more (changed or gone): every other kept row is reused.
    dropped: list[str]
    kept: Path  # parse_cache.cache_dir of the location
    keep_rows: bool  # whether this run's rows are kept for the next (parsing.reuse_min_files)
    # Whether this run's parsed rows may join the kept ones as one more file, the
    # rows of changed and deleted files staying behind, unread: while they are few.
    appends_rows: bool = False
    # How the records of a changed JSON Lines file find their kept rows (None: not kept).
    record_reuse: RecordReuse | None = None

    @property
    def kept_rows(self) -> Path:
        return parse_cache.file_rows_dir(self.kept)

    @property
    def bytes_to_parse(self) -> int:
        return sum(row[2] for row in self.to_parse if row[4] is None)

    @property
    def record_code(self) -> str | None:
        """What this run's record digests are made with (None: records are not kept)."""
        return self.record_reuse.code if self.record_reuse is not None else None

    @property
    def bytes_outside_records(self) -> int:
        """The bytes to parse of the files whose records no kept row can stand for."""
        takes = self.record_reuse is not None and self.record_reuse.kept_rows is not None
        return sum(
            row[2] for row in self.to_parse if row[4] is None and not (takes and is_jsonl(row[1]))
        )

    def may_fit_in_process(self, spark: SparkConfig) -> bool:
        """Whether the change set may be small enough for the task's own process once the
        unchanged records of changed JSON Lines files are taken from their kept rows;
        only parsing tells (rag_ingest.record_rows.FreshBudget). Not before any row is
        kept (a first run), nor unless some kept file rows are of changed files, nor when
        the kept rows' digests were made with other settings or parsing code (no record
        would be found again)."""
        return (
            bool(self.dropped)
            and (self.kept_rows / "_SUCCESS").exists()
            and parse_cache.kept_record_code(self.kept_rows) == self.record_code
            and self.bytes_outside_records < self.bytes_to_parse
            and len(self.to_parse) <= spark.in_process_max_files
            and self.bytes_outside_records <= spark.in_process_max_bytes
        )

    def fits_in_process(self, spark: SparkConfig) -> bool:
        """Whether the change set is small enough to parse in the task's own process,
        where no Spark start-up is paid (`spark.in_process_max_files` and `_bytes`)."""
        return (
            len(self.to_parse) <= spark.in_process_max_files
            and self.bytes_to_parse <= spark.in_process_max_bytes
        )


def plan_extract(
    settings: Settings, source: SourceConfig, listing: Listing, reparse: bool = False
) -> ExtractPlan:
    """The files of `listing` to parse and the kept rows to take for the rest.

    A small source (below `parsing.reuse_min_files`, and with JSON Lines files of
    less than `parsing.reuse_min_record_mb`) keeps no rows and is parsed whole:
    keeping them would cost more than parsing a few hundred small files.
    """
    location, files = listing.location, listing.files
    kept = parse_cache.cache_dir(settings.staging_dir, source.name, location)
    # Keys count from the untemplated root, so they hold the partition.
    partition = posixpath.relpath(location, settings.source_root(source))
    record_bytes = sum(f.size for f in files if not f.refused and is_jsonl(f.relative_path))
    keep_rows = (
        len(files) >= source.parsing.reuse_min_files
        or record_bytes >= source.parsing.reuse_min_record_mb * 2**20
    )
    if not keep_rows:
        parse_cache.drop_file_rows(kept)
    kept_keys = (
        set()
        if reparse or not keep_rows
        else parse_cache.kept_keys(parse_cache.file_rows_dir(kept))
    )
    to_parse: list[ListingRow] = []
    reused: list[str] = []
    for f, key in zip(files, listing.keys, strict=True):
        if key is not None and key in kept_keys:
            reused.append(key)
            continue
        relative = posixpath.normpath(posixpath.join(partition, f.relative_path))
        to_parse.append((f.uri, relative, f.size, f.modified_at, f.refused, f.refused_reason, key))
    dropped = sorted(kept_keys.difference(reused))
    appends = bool(reused) and len(dropped) <= _MAX_DROPPED_SHARE * len(kept_keys)
    records = (
        RecordReuse(listing.record_code, None if reparse else str(parse_cache.file_rows_dir(kept)))
        if keep_rows
        else None
    )
    return ExtractPlan(
        location, files, to_parse, reused, dropped, kept, keep_rows, appends, records
    )


# Kept rows are rewritten whole once this share of them is of changed or deleted files.
_MAX_DROPPED_SHARE = 0.2


def parse_batches(
    settings: Settings,
    source: SourceConfig,
    location: str,
    records: RecordReuse | None = None,
    taken: dict[str, TakenFile] | None = None,
    budget: FreshBudget | None = None,
) -> ParseBatches:
    """The function every batch of listing rows is parsed with (Spark's mapInPandas
    body on executors; called directly in the task's own process, which passes
    `taken` and `budget`: extract.parse_files)."""
    return partial(
        parse_files,
        source=source.name,
        limits=ParseLimits(
            source.max_file_bytes, source.max_document_chars, source.max_parse_seconds
        ),
        fields=RecordFields(**source.records.model_dump()),
        access_labels=tuple(source.access_labels),
        gate=sensitive_gate(settings, source),
        parsing=source_parsing(source, location),
        records=records,
        taken=taken,
        budget=budget,
    )


def sensitive_gate(settings: Settings, source: SourceConfig) -> SensitiveGate | None:
    gate = settings.sensitive_data_for(source)
    if gate.policy == "off" or not gate.detect:
        return None
    return SensitiveGate(gate.policy, tuple(gate.detect), tuple(gate.phone_regions))
