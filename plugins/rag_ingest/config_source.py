"""A source's section of the configuration file (`sources:`), and what it nests.

Re-exported by `rag_ingest.config` with the other sections.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rag_ingest.config_sections import StrictModel

_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")


class RecordsConfig(StrictModel):
    """Field names in record files (JSON Lines, Parquet); defaults are BEIR's layout."""

    id_field: str = "_id"
    title_field: str | None = "title"
    text_field: str = "text"
    metadata_fields: tuple[str, ...] = ()
    # A field with the record's own access labels (a list, or "a,b" text); a
    # record without it gets the source's `access_labels`.
    acl_field: str | None = None


class SensitiveDataConfig(StrictModel):
    """The sensitive-data gate, run on every parsed document (rag_ingest.sensitive).

    redact: findings are replaced by [REDACTED:<kind>] before anything is
    stored. quarantine: the document is quarantined (reason sensitive_data).
    fail: the run fails after extract, before anything is written. Secrets
    and card numbers are looked for by default; email and phone are opt-in,
    since much knowledge (contact pages) holds them on purpose.
    """

    policy: Literal["off", "redact", "quarantine", "fail"] = "redact"
    detect: tuple[Literal["email", "phone", "payment_card", "api_key", "private_key"], ...] = (
        "payment_card",
        "api_key",
        "private_key",
    )
    # Regions whose numbering plans `phone` checks numbers against (ISO 3166 codes).
    phone_regions: tuple[str, ...] = ("US",)


class GoldenSetConfig(StrictModel):
    """The evaluation gate: after the upsert, golden queries must find their documents.

    `golden_set` is a JSON Lines file (relative to this configuration file):
    one {"query": "...", "expected": ["guide/install.md", "42"]} per line, each
    expected document named by its path (or a trailing part of it), its uri,
    or, in a record file, its record key.
    """

    golden_set: str
    k: int = Field(10, gt=0, description="Documents retrieved per golden query")
    min_recall: float = Field(0.8, ge=0.0, le=1.0, description="Mean recall@k the run needs")
    # fail: the run fails (its writes stay; the report says so). warn: reported only.
    on_failure: Literal["fail", "warn"] = "fail"
    # A BEIR-layout folder whose corpus this source ingests (records keyed by their
    # `_id`): a cutover also compares both generations' nDCG@10 and Recall@10 on it.
    dataset: str | None = None


class ParsingConfig(StrictModel):
    """How a source's files are read beyond their format's defaults (rag_ingest.parsing)."""

    # off: never; auto: PDF pages without a text layer, and image files; force: every page.
    ocr: Literal["off", "auto", "force"] = "auto"
    # A page whose mean word confidence (0-100) is below this is reported in the run report.
    ocr_min_confidence: float = Field(60.0, ge=0, le=100)
    ocr_languages: str = Field("eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$")
    ocr_dpi: int = Field(200, ge=72, le=600)
    # Office files and EPUBs are zip archives: checked before any entry is read.
    max_unpacked_mb: float = Field(200.0, gt=0, allow_inf_nan=False)
    max_archive_entries: int = Field(10_000, gt=0)
    # Rows read per spreadsheet sheet (empty ones included); the rest is reported.
    max_sheet_rows: int = Field(100_000, gt=0)
    # Sources with at least this many files keep each file's parsed rows, so a run
    # parses only the files that changed; smaller ones are parsed whole each time.
    reuse_min_files: int = Field(200, ge=1)
    # ...and so does a source whose JSON Lines files hold at least this many MB: a
    # changed record file then parses only the records whose line changed.
    reuse_min_record_mb: float = Field(8.0, ge=0, allow_inf_nan=False)


class ApprovalConfig(StrictModel):
    """Decisions a person makes in the Airflow UI (human-in-the-loop tasks)."""

    # A cutover that passed the golden set also waits for a person's approval.
    cutover: bool = False
    # A run whose deletions pass the source's max_delete_share waits for a person
    # (approve: delete; reject: the run ends, nothing written or deleted). False: such
    # a run fails at once, as before; the `allow_mass_delete` param skips either.
    mass_delete: bool = True
    # No answer within this time counts as a rejection.
    timeout_hours: float = Field(24.0, gt=0)


class WatchConfig(StrictModel):
    """Change-driven runs (rag_ingest.watch): a change starts a run without waiting for
    the schedule, which still runs as a safety net.

    listing: Airflow's triggerer lists the location every `interval_seconds` (paths,
    sizes, modified times; no Spark, no model). queue: a message on a queue of
    Airflow's common-messaging provider, picked by `queue_scheme` (redis+pubsub, sqs,
    kafka, ...); `queue_options` are that scheme's trigger arguments, for Redis
    {channels: [...], redis_conn_id: ..., poll_interval: 1}.
    """

    feed: Literal["listing", "queue"] = "listing"
    interval_seconds: float = Field(10.0, gt=0, allow_inf_nan=False)
    # A burst of changes is one run: it starts once no change came for this long...
    quiet_seconds: float = Field(2.0, ge=0, allow_inf_nan=False)
    # ...or this long after the burst's first change, whichever is first.
    max_wait_seconds: float = Field(60.0, gt=0, allow_inf_nan=False)
    queue_scheme: str | None = None
    queue_options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _queue_is_named(self) -> WatchConfig:
        if self.feed == "queue" and not self.queue_scheme:
            raise ValueError("feed 'queue' needs queue_scheme (for example redis+pubsub)")
        return self


class SourceConfig(StrictModel):
    name: str
    location: str = Field(
        description="Folder path or fsspec URL; may hold {{ ds }}-style templates"
    )
    glob: str = "**/*"
    mode: Literal["snapshot", "partitioned"] = "snapshot"
    schedule: str | None = None
    access_labels: tuple[str, ...] = ()
    max_delete_share: float = Field(0.5, ge=0.0, le=1.0)
    max_file_mb: float = Field(
        50.0, gt=0, allow_inf_nan=False, description="Larger files are quarantined"
    )
    # One document's bounds: more parsed text, or a longer parse, is quarantined,
    # so no single file can hold a worker's memory or time (issue 18).
    max_document_chars: int = Field(5_000_000, gt=0, description="Parsed characters per document")
    max_chunks_per_document: int = Field(20_000, gt=0, description="Chunks one document may make")
    max_parse_seconds: float = Field(
        120.0, gt=0, allow_inf_nan=False, description="Seconds to parse one file"
    )
    records: RecordsConfig = RecordsConfig()
    parsing: ParsingConfig = ParsingConfig()
    # Per-source tuning of the quality suites: expectation name -> kwargs,
    # over `quality.overrides` (for example {text_not_empty: {mostly: 0.99}}).
    quality_overrides: dict[str, dict[str, Any]] = {}
    # Freshness: hours a source may go without a successful ingestion (none: no SLA).
    freshness_sla_hours: float | None = Field(None, gt=0)
    # Retrieval check after each upsert (none: no evaluation gate).
    evaluation: GoldenSetConfig | None = None
    # This source's sensitive-data gate (none: the top-level `sensitive_data`).
    sensitive_data: SensitiveDataConfig | None = None
    approval: ApprovalConfig = ApprovalConfig()
    # Change-driven runs (none: the schedule only).
    watch: WatchConfig | None = None

    @model_validator(mode="after")
    def _watched_listing_is_one_place(self) -> SourceConfig:
        if self.watch is not None and self.watch.feed == "listing" and self.is_templated:
            raise ValueError(
                "watch: a listing watcher needs one location, and this one is templated "
                f"({self.location!r}); use feed 'queue', or no watch"
            )
        return self

    @field_validator("glob")
    @classmethod
    def _glob_stays_inside(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts:
            raise ValueError(
                f"{value!r} would reach outside the source folder; a glob is relative to "
                "`location` and may not hold '..' or start with '/'"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError(
                "must be lower-case letters, digits and '_' (it becomes part of a DAG id)"
            )
        return value

    @property
    def is_local(self) -> bool:
        return "://" not in self.location or self.location.startswith("file://")

    @property
    def is_templated(self) -> bool:
        return "{{" in self.location

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.name)


DAG_ID_PREFIX = "rag_ingest__"


def dag_id_for(source_name: str) -> str:
    """The ingestion DAG of a source: its Airflow permissions are the source's."""
    return f"{DAG_ID_PREFIX}{source_name}"
