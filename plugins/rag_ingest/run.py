"""One ingestion run: where its files lie, and what its stages report.

`RunLayout` names every path of a run's staging folder once
(`{staging}/{source}/{run}/`); stages, Spark jobs, gates and the report all
ask it, never spell a path themselves. `RunContext` is what a stage starts
from: the settings, the source, the run id and that layout.

Every stage writes one typed result (the dataclasses in
`rag_ingest.stage_results`) to `stages/<name>.json`; the report, the CLI and
the UI read them back through the same types.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rag_ingest.config import Settings, SourceConfig, load_settings
from rag_ingest.config import config_path as config_path_of
from rag_ingest.stage_results import ApprovalResult, StageResult, StageT

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_run_key(run_id: str) -> str:
    """A run id as a folder name: `manual__2026-01-01T00:00:00+00:00` -> safe characters."""
    return _UNSAFE.sub("_", run_id).strip("_") or "run"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run's staging folder, named once."""

    root: Path

    # What extract writes; the parse cache keeps and restores exactly these.
    EXTRACT_OUTPUTS = ("documents", "quarantine", "sensitive")

    def clear_extract_outputs(self) -> None:
        """No extract output (what a failed restore or an abandoned attempt left)."""
        for name in self.EXTRACT_OUTPUTS:
            shutil.rmtree(self.root / name, ignore_errors=True)

    @classmethod
    def of(cls, staging_dir: str | Path, source: str, run_id: str) -> RunLayout:
        return cls(Path(staging_dir) / source / safe_run_key(run_id))

    @classmethod
    def of_shard(cls, shard_path: str | Path) -> RunLayout:
        """The layout a shard of `to_embed/` belongs to (an embed task knows only its shard)."""
        return cls(Path(shard_path).parent.parent)

    # Extract: parsed documents, what could not be parsed, sensitive-data findings.
    @property
    def documents(self) -> Path:
        return self.root / "documents"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def sensitive(self) -> Path:
        return self.root / "sensitive"

    # plan_documents: the store's inventory, and which documents to chunk or delete.
    @property
    def plan(self) -> Path:
        return self.root / "plan"

    @property
    def inventory(self) -> Path:
        return self.plan / "inventory.parquet"

    @property
    def to_chunk(self) -> Path:
        return self.plan / "to_chunk.parquet"

    @property
    def vanished(self) -> Path:
        return self.plan / "vanished.parquet"

    @property
    def plan_buckets(self) -> Path:
        """Scratch space of the bucketed plans, removed when a plan ends."""
        return self.plan / "buckets"

    # chunk: the chunks of the documents to chunk, and the documents over the chunk limit.
    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    @property
    def chunk_quarantine(self) -> Path:
        return self.root / "chunk_quarantine"

    @property
    def chunk_job_output(self) -> Path:
        """The chunk job's output before it is split into chunks and refusals."""
        return self.root / "chunk_job"

    # plan_chunks: what to keep, delete, embed, or copy a vector for.
    @property
    def stale_chunks(self) -> Path:
        return self.plan / "stale_chunks.parquet"

    @property
    def kept(self) -> Path:
        return self.plan / "kept.parquet"

    @property
    def needs_vector(self) -> Path:
        return self.plan / "needs_vector.parquet"

    @property
    def reused(self) -> Path:
        """Chunks with a vector copied from the store (same text, same model)."""
        return self.plan / "reused.parquet"

    @property
    def duplicates(self) -> Path:
        """Chunks repeating a text embedded in this run: `vector_from` names the source."""
        return self.plan / "duplicates.parquet"

    @property
    def to_embed(self) -> Path:
        """Embedding shards, one mapped embed task each."""
        return self.root / "to_embed"

    # embed: one output file per shard, of the same name.
    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    def embedded(self, shard: str | Path) -> Path:
        return self.embeddings / Path(shard).name

    # The generation this run builds and reads (rag_ingest.generations), fixed once a run.
    @property
    def generation_contract(self) -> Path:
        return self.root / "generation.json"

    @property
    def vector_lender(self) -> Path:
        """A building generation's sub-run: the live generation that lends it vectors."""
        return self.root / "vector_lender.json"

    @property
    def lendable(self) -> Path:
        """The lending generation's inventory (the chunks whose vectors it can copy)."""
        return self.plan / "lendable.parquet"

    # Results, timings, gate evidence and Spark job hand-backs.
    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage_file(self, name: str) -> Path:
        return self.stages / f"{name}.json"

    @property
    def gate_evidence(self) -> Path:
        return self.root / "gates"

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    def job_result(self, job: str) -> Path:
        """What a spark-submit job hands back to the task that submitted it."""
        return self.root / "jobs" / f"{job}.json"

    # Leftovers of an earlier attempt of plan_chunks, removed before it plans again.
    def plan_chunks_outputs(self) -> tuple[Path, ...]:
        return (self.to_embed, self.embeddings, self.plan_buckets, self.reused, self.duplicates)


def bound_settings(settings: Settings, layout: RunLayout) -> Settings:
    """The settings of the generation a run is bound to, once it is (the plan binds it)."""
    if not layout.generation_contract.exists():
        return settings
    from rag_ingest.generations import GenerationRecord, settings_for

    record = GenerationRecord.from_json(layout.generation_contract.read_text())
    return settings_for(settings, record)


def write_stage_result(layout: RunLayout, result: StageResult) -> None:
    """A stage's result as stages/<name>.json, which the run report reads."""
    layout.stages.mkdir(parents=True, exist_ok=True)
    layout.stage_file(result.file_name).write_text(
        json.dumps(result.to_dict(), indent=2, default=str)
    )


def read_stage_result(layout: RunLayout, kind: type[StageT]) -> StageT:
    """The result a stage of this run wrote (FileNotFoundError: it has not run)."""
    return kind.from_dict(json.loads(layout.stage_file(kind.NAME).read_text()))


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    source: SourceConfig
    run_id: str
    config_path: str

    @classmethod
    def load(cls, config_path: str | None, source_name: str, run_id: str) -> RunContext:
        path = str(config_path_of(config_path).resolve())
        settings = load_settings(path)
        layout = RunLayout.of(settings.staging_dir, source_name, run_id)
        return cls(bound_settings(settings, layout), settings.source(source_name), run_id, path)

    @property
    def layout(self) -> RunLayout:
        return RunLayout.of(self.settings.staging_dir, self.source.name, self.run_id)

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    @property
    def source_reports(self) -> Path:
        """This source's folder of run reports, Data Docs and freshness reports."""
        return Path(self.settings.reports_dir) / self.source.name

    def failing_rows_csv(self, gate: str) -> Path:
        """A failed gate's rows by file, for download from the UI."""
        return self.source_reports / "failing" / f"{self.layout.root.name}-{gate}.csv"

    def record(self, result: StageT) -> StageT:
        write_stage_result(self.layout, result)
        log.info("%s: %s", result.file_name, result.summary())
        return result

    def result(self, kind: type[StageT]) -> StageT:
        return read_stage_result(self.layout, kind)

    def approval(self, kind: str) -> ApprovalResult | None:
        """A person's answer to the run's `kind` approval task, if it has one."""
        path = self.layout.stage_file(f"{ApprovalResult.NAME}-{kind}")
        return ApprovalResult.from_dict(json.loads(path.read_text())) if path.exists() else None
