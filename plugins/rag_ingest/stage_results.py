"""Typed results of a run's stages: what each stage writes and the report reads.

A stage returns one of these and writes it to `stages/<file_name>.json`.
Fields made with `counter()` are the run's counts: `RunCounts` has one field
per counter, so a counter renamed in a stage without `RunCounts` fails to
build the report (a test builds one from every stage), and a reader of the
report (CLI, UI) names counters as attributes, which mypy checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar


def counter() -> Any:
    """A stage's field that is one of the run's counts (RunCounts)."""
    return field(default=0, metadata={"counter": True})


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """What every stage reports: its name and its wall time."""

    NAME: ClassVar[str]
    seconds: float = 0.0

    @property
    def file_name(self) -> str:
        """The name of its file under stages/ (embed shards and gates have one each)."""
        return self.NAME

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.NAME, **asdict(self)}

    def summary(self) -> dict[str, Any]:
        """What the task log shows of it (no long lists)."""
        return {k: v for k, v in self.to_dict().items() if not isinstance(v, list)}

    def counters(self) -> dict[str, int]:
        return {
            f.name: int(getattr(self, f.name)) for f in fields(self) if f.metadata.get("counter")
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read back what `to_dict` wrote; a key this type does not know is an error."""
        values = {k: v for k, v in data.items() if k != "stage"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.NAME} result: unknown fields {', '.join(unknown)}")
        return cls(**values)


StageT = TypeVar("StageT", bound=StageResult)


@dataclass(frozen=True, kw_only=True)
class RefusedResult(StageResult):
    """The run found its source busy and did nothing."""

    NAME = "refused"
    reason: str


@dataclass(frozen=True, kw_only=True)
class MassDeleteRefusedResult(StageResult):
    """The run refused to delete this many documents (it wrote nothing)."""

    NAME = "mass_delete_refused"
    reason: str
    would_delete: int
    # The first of them, by uri, for the report (the count says how many more).
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class MassDeletePendingResult(MassDeleteRefusedResult):
    """plan_documents found deletions past the guard: a person decides (approve_deletions)."""

    NAME = "mass_delete_pending"


@dataclass(frozen=True, kw_only=True)
class ApprovalResult(StageResult):
    """A person's answer to one of the run's approval tasks (Airflow human-in-the-loop)."""

    NAME = "approval"
    kind: str  # mass_delete | cutover
    approved: bool
    by: str  # the responding user, as Airflow names them ("" for a timeout)
    answer: str  # the option chosen, or why none was

    @property
    def file_name(self) -> str:
        return f"approval-{self.kind}"


@dataclass(frozen=True, kw_only=True)
class ExtractResult(StageResult):
    NAME = "extract"
    files_listed: int = counter()
    files_parsed: int = counter()  # the rest took their kept rows (rag_ingest.parse_cache)
    # Records of changed JSON Lines files whose line was unchanged: their kept row taken
    # instead of a parse (rag_ingest.record_rows).
    records_reused: int = counter()
    documents: int = counter()
    quarantined: int = counter()
    documents_with_sensitive_data: int = counter()
    includes_dropped: int = counter()  # include lines whose target is outside the source
    ocr_pages: int = counter()
    low_confidence_pages: int = counter()  # OCR'd pages below parsing.ocr_min_confidence
    # The documents the parse notes flag (dropped includes, low-confidence pages,
    # truncated sheets, ignored macros), the first of them, by uri.
    noted_documents: list[dict[str, Any]] = field(default_factory=list)
    location: str = ""
    sensitive_policy: str = "off"
    parse_reused: bool = False
    # Where the files were parsed: "spark", or "task" (a small change set parsed in the
    # task's own process: spark.in_process_max_files); "" when the extraction was reused.
    engine: str = ""
    spark_startup_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PlanDocumentsResult(StageResult):
    NAME = "plan_documents"
    documents_seen: int = counter()
    documents_new: int = counter()
    documents_changed: int = counter()
    documents_unchanged: int = counter()
    documents_vanished: int = counter()
    # New documents left for a later run (a generation built over several runs).
    documents_deferred: int = 0


@dataclass(frozen=True, kw_only=True)
class ChunkResult(StageResult):
    NAME = "chunk"
    documents_chunked: int = counter()
    chunks: int = counter()
    documents_over_chunk_limit: int = counter()
    engine: str = ""  # "spark" or "task", as ExtractResult.engine; "" when nothing was chunked
    spark_startup_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PlanChunksResult(StageResult):
    NAME = "plan_chunks"
    chunks_to_embed: int = counter()
    chunks_vector_from_store: int = counter()
    chunks_vector_from_run: int = counter()
    chunks_kept: int = counter()
    chunks_stale: int = counter()
    shards: list[str] = field(default_factory=list)

    @property
    def vectors_to_write(self) -> int:
        """Vectors the upsert writes: computed, copied from the store, copied in the run."""
        return self.chunks_to_embed + self.chunks_vector_from_store + self.chunks_vector_from_run


@dataclass(frozen=True, kw_only=True)
class EmbedShardResult(StageResult):
    NAME = "embed"
    shard: str
    chunks: int
    device: str
    backend: str
    precision: str
    model_load_seconds: float  # loading it in the task, or reaching (starting) the service
    model_seconds: float
    chunks_per_second: float | None
    model_service_pid: int | None = None  # the worker's embedding service; None: the task's own

    @property
    def file_name(self) -> str:
        return f"embed-{Path(self.shard).stem}"


@dataclass(frozen=True, kw_only=True)
class UpsertResult(StageResult):
    NAME = "upsert"
    chunks_written: int = counter()
    chunks_deleted: int = counter()
    documents_deleted: int = counter()
    store_writes: int = counter()
    indexes: str = ""  # what refreshing the store's own indexes did (nothing written: "")


@dataclass(frozen=True, kw_only=True)
class EvaluationResult(StageResult):
    NAME = "evaluation"
    queries: int
    k: int
    recall: float
    min_recall: float
    on_failure: str
    success: bool
    misses: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class GenerationBuildResult(StageResult):
    """The build_generation task: the configured generation, built beside the live one."""

    NAME = "generation_build"
    live: str
    configured: str
    status: str  # of the configured generation after the step (rag_ingest.generations.Status)
    note: str = ""
    documents_built: int = 0
    documents_listed: int = 0
    documents_deferred: int = 0
    chunks_embedded: int = 0
    chunks_vector_reused: int = 0  # copied from a generation computing identical vectors
    chunks_written: int = 0
    dropped: list[str] = field(default_factory=list)  # expired generations removed


@dataclass(frozen=True, kw_only=True)
class CutoverResult(StageResult):
    """The cutover task: both generations measured on the same queries, and the verdict."""

    NAME = "cutover"
    candidate: str
    live_before: str
    live_after: str
    accepted: bool  # the quality verdict (compare_generations)
    reason: str
    switched: bool = False  # the pointer moved (cutover)
    awaiting_approval: bool = False  # the source asks a person before the switch
    metric: str = ""  # the measure the verdict is taken on (generations.metric)
    live_value: float | None = None
    candidate_value: float | None = None
    # Every measure, side by side: name -> [live, candidate] (same queries on both).
    measures: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RollbackResult(StageResult):
    """The run's `rollback` param: the previous generation serves again."""

    NAME = "rollback"
    from_generation: str
    to_generation: str


@dataclass(frozen=True, kw_only=True)
class GateRecord(StageResult):
    """A quality gate's outcome as written (quality.GateResult's fields), or why it was skipped."""

    NAME = "gate"
    gate: str  # documents | chunks | embeddings
    success: bool
    skipped: str | None = None
    rows: int = 0
    expectations: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "pandas"
    data_docs: str | None = None
    failing_rows: str | None = None  # the failing rows' facts (Parquet, staging)
    failing_csv: str | None = None  # the same rows by file and value (CSV, reports)

    @property
    def file_name(self) -> str:
        return f"gate-{self.gate}"

    def for_report(self) -> dict[str, Any]:
        """The report's view: what was found (a skipped gate: only why)."""
        if self.skipped:
            return {"success": self.success, "skipped": self.skipped}
        return {k: v for k, v in asdict(self).items() if k not in ("gate", "skipped")}


@dataclass(frozen=True)
class RunCounts:
    """The run's counts, as the report's `counts` holds them (absent: the stage never ran)."""

    files_listed: int = 0
    files_parsed: int = 0
    records_reused: int = 0
    documents: int = 0
    quarantined: int = 0
    documents_with_sensitive_data: int = 0
    includes_dropped: int = 0
    ocr_pages: int = 0
    low_confidence_pages: int = 0
    documents_seen: int = 0
    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_vanished: int = 0
    documents_chunked: int = 0
    chunks: int = 0
    documents_over_chunk_limit: int = 0
    chunks_to_embed: int = 0
    chunks_vector_from_store: int = 0
    chunks_vector_from_run: int = 0
    chunks_kept: int = 0
    chunks_stale: int = 0
    chunks_embedded: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    documents_deleted: int = 0
    store_writes: int = 0

    @classmethod
    def from_report(cls, counts: dict[str, Any]) -> RunCounts:
        """A report's counts; counters it lacks (stages that never ran) read as 0."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in counts.items() if k in known})


STAGE_TYPES: dict[str, type[StageResult]] = {
    t.NAME: t
    for t in (
        RefusedResult,
        MassDeleteRefusedResult,
        MassDeletePendingResult,
        ApprovalResult,
        ExtractResult,
        PlanDocumentsResult,
        ChunkResult,
        PlanChunksResult,
        EmbedShardResult,
        UpsertResult,
        EvaluationResult,
        GenerationBuildResult,
        CutoverResult,
        RollbackResult,
        GateRecord,
    )
}


@dataclass
class RunResults:
    """Every stage result a run's staging folder holds, typed."""

    stages: dict[str, StageResult] = field(default_factory=dict)  # by NAME, one each
    embed: list[EmbedShardResult] = field(default_factory=list)
    gates: dict[str, GateRecord] = field(default_factory=dict)
    approvals: dict[str, ApprovalResult] = field(default_factory=dict)  # by kind

    @classmethod
    def read(cls, stages_dir: Path) -> RunResults:
        results = cls()
        if not stages_dir.is_dir():
            return results
        for path in sorted(stages_dir.glob("*.json")):
            data = json.loads(path.read_text())
            kind = STAGE_TYPES.get(str(data.get("stage")))
            if kind is None:
                raise ValueError(f"{path}: unknown stage {data.get('stage')!r}")
            result = kind.from_dict(data)
            if isinstance(result, EmbedShardResult):
                results.embed.append(result)
            elif isinstance(result, ApprovalResult):
                results.approvals[result.kind] = result
            elif isinstance(result, GateRecord):
                results.gates[result.gate] = result
            else:
                results.stages[result.NAME] = result
        return results

    def get(self, kind: type[StageT]) -> StageT | None:
        found = self.stages.get(kind.NAME)
        return found if isinstance(found, kind) else None

    def counts(self) -> dict[str, int]:
        """Counters of the stages that ran, checked against RunCounts."""
        counts: dict[str, int] = {}
        for result in self.stages.values():
            counts.update(result.counters())
        counts["chunks_embedded"] = sum(r.chunks for r in self.embed)
        RunCounts(**counts)  # a counter RunCounts does not know fails here, not silently
        return counts
