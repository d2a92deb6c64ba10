"""Index generations: what a source's chunks were built with, named; which one serves.

A generation is named by everything that shapes its stored chunks and vectors:
the model (id and revision), a backend variant that changes vectors (int8
weights), both prompts and the chunker fingerprint. Each generation has its
own table (LanceDB) or collection (MongoDB); the first one a store holds keeps
the configured name, later ones get `<name>__<generation>`.

One pointer per source says which generation serves; readers follow it, and
a cutover or a rollback is one write of it. The rules here (naming, status,
which generations to drop, whether a cutover may happen) are pure and
unit-tested; rag_ingest.stores.registry keeps the records, and
rag_ingest.pipeline.generation runs the build and the cutover.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rag_ingest.config import ChunkingConfig, Settings
from rag_ingest.identity import fingerprint

# Backends whose vectors match the published model's (a switch among them is no change).
_FAITHFUL_BACKENDS = ("auto", "torch", "onnx")

Status = Literal["live", "previous", "building", "complete", "refused"]


@dataclass(frozen=True)
class GenerationSpec:
    """How a generation's chunks and vectors are made: enough to make more of them."""

    model_path: str
    model_id: str
    model_revision: str
    backend: str
    document_prompt: str
    query_prompt: str
    chunking: Mapping[str, Any]
    chunker_fingerprint: str

    @property
    def vectors_variant(self) -> str:
        """The part of the backend that changes vectors (faithful backends are one)."""
        return "float" if self.backend in _FAITHFUL_BACKENDS else self.backend

    @property
    def vectors_key(self) -> str:
        """Equal for two generations exactly when they compute the same vector for a text."""
        return fingerprint(
            {
                "model_id": self.model_id,
                "revision": self.model_revision,
                "variant": self.vectors_variant,
                "document_prompt": self.document_prompt,
            }
        )

    @property
    def name(self) -> str:
        return (
            "gen-"
            + fingerprint(
                {
                    "vectors": self.vectors_key,
                    "query_prompt": self.query_prompt,
                    "chunker": self.chunker_fingerprint,
                }
            )[:10]
        )

    def describe(self) -> str:
        """One line for reports and the CLI."""
        extras = [f"backend {self.backend}"]
        if self.document_prompt or self.query_prompt:
            extras.append(f"prompts {self.document_prompt!r}/{self.query_prompt!r}")
        size, overlap = self.chunking.get("max_tokens"), self.chunking.get("overlap_tokens")
        extras.append(f"chunks of {size} tokens, overlap {overlap}")
        return f"{self.model_id} ({self.model_revision}); " + ", ".join(extras)


def spec_of(settings: Settings) -> GenerationSpec:
    """The generation the configuration asks for."""
    from rag_ingest.chunking import chunker_fingerprint
    from rag_ingest.embedding import model_revision

    embedding = settings.embedding
    return GenerationSpec(
        model_path=embedding.model_path,
        model_id=embedding.model_id,
        model_revision=model_revision(embedding.model_path),
        backend=embedding.backend,
        document_prompt=embedding.document_prompt,
        query_prompt=embedding.query_prompt,
        chunking=settings.chunking.model_dump(mode="json"),
        chunker_fingerprint=chunker_fingerprint(settings),
    )


@dataclass(frozen=True)
class GenerationRecord:
    """One generation of one source, as the registry keeps it."""

    source: str
    name: str
    table: str  # LanceDB table or MongoDB collection
    spec: GenerationSpec
    created_at: datetime
    completed_at: datetime | None = None  # every listed document built
    live_since: datetime | None = None
    retired_at: datetime | None = None  # stopped serving (cutover to another, or rollback)
    refused_at: datetime | None = None
    reason: str = ""  # why refused, or held
    documents_built: int = 0
    documents_listed: int = 0
    updated_at: datetime | None = None  # last build step
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, default=_iso, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenerationRecord:
        data = json.loads(text)
        data["spec"] = GenerationSpec(**data["spec"])
        for key in ("created_at", "completed_at", "live_since", "retired_at", "refused_at",
                    "updated_at"):  # fmt: skip
            if data.get(key):
                data[key] = datetime.fromisoformat(data[key])
        return cls(**data)


@dataclass(frozen=True)
class Pointer:
    """Which generation of a source serves, and which served before it."""

    source: str
    live: str
    previous: str | None = None
    switched_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_iso, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Pointer:
        data = json.loads(text)
        if data.get("switched_at"):
            data["switched_at"] = datetime.fromisoformat(data["switched_at"])
        return cls(**data)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table_name(base: str, generation: str, base_owner: str | None) -> str:
    """The configured table keeps the first generation; later ones are named after theirs."""
    return base if generation == base_owner else f"{base}__{generation}"


def status(record: GenerationRecord, pointer: Pointer | None) -> Status:
    """The pointer is the truth for what serves; the record for the rest."""
    if pointer is not None and pointer.live == record.name:
        return "live"
    if pointer is not None and pointer.previous == record.name:
        return "previous"
    if record.refused_at is not None:
        return "refused"
    if record.completed_at is not None:
        return "complete"
    return "building"


def stopped_serving(record: GenerationRecord, pointer: Pointer | None) -> datetime | None:
    """When a generation stopped being useful as it is: retired, refused, or displaced."""
    if record.retired_at or record.refused_at:
        return record.retired_at or record.refused_at
    if pointer is not None and pointer.previous == record.name:
        return pointer.switched_at  # a crash between the switch and the record's update
    return None


def expired(
    records: Sequence[GenerationRecord],
    pointer: Pointer | None,
    *,
    building: str | None,
    keep_count: int,
    keep_hours: float,
    now: datetime,
) -> list[GenerationRecord]:
    """Generations to drop: not live, not being built, and past the retention rule.

    Those that stopped serving (or were refused) are kept newest first, at most
    `keep_count` of them and none for longer than `keep_hours`.
    """
    done = [
        (stopped, record)
        for record in records
        if status(record, pointer) != "live" and record.name != building
        and (stopped := stopped_serving(record, pointer)) is not None
    ]  # fmt: skip
    done.sort(key=lambda pair: pair[0], reverse=True)
    limit = timedelta(hours=keep_hours)
    return [
        record for rank, (stopped, record) in enumerate(done)
        if rank >= keep_count or now - stopped > limit
    ]  # fmt: skip


@dataclass(frozen=True)
class CutoverDecision:
    accepted: bool
    reason: str


def decide_cutover(
    metric: str, live_value: float | None, new_value: float | None, max_drop: float
) -> CutoverDecision:
    """Cut over only when the new generation is measured and not worse than `max_drop`."""
    if live_value is None or new_value is None:
        return CutoverDecision(
            False,
            "held: the source has no golden set (`evaluation`) to compare the generations "
            "on; activate it by hand with `rag-ingest generations activate` once checked",
        )
    drop = round(live_value - new_value, 9)  # 0.90 - 0.85 is 0.05, not 0.0500000004
    if drop > max_drop:
        return CutoverDecision(
            False,
            f"refused: {metric} {new_value:.4f} against the live generation's "
            f"{live_value:.4f} (down {drop:.4f}, more than the allowed {max_drop:.4f})",
        )
    return CutoverDecision(
        True,
        f"accepted: {metric} {new_value:.4f} against the live generation's {live_value:.4f} "
        f"(allowed drop {max_drop:.4f})",
    )


def settings_for(settings: Settings, record: GenerationRecord) -> Settings:
    """The settings that build and read `record`'s generation.

    The configured generation keeps the configured embedding settings (a
    faithful backend switch is no new generation); another one gets its
    recorded model, prompts and chunking back. Either way the store is its own.
    """
    store_field = "table" if settings.store.kind == "lancedb" else "collection"
    store = settings.store.model_copy(update={store_field: record.table})
    if spec_of(settings).name == record.name:
        return settings.model_copy(update={"store": store})
    spec = record.spec
    embedding = settings.embedding.model_copy(
        update={
            "model_path": spec.model_path,
            "model_id": spec.model_id,
            "backend": spec.backend,
            "document_prompt": spec.document_prompt,
            "query_prompt": spec.query_prompt,
        }
    )
    return settings.model_copy(
        update={
            "store": store,
            "embedding": embedding,
            "chunking": ChunkingConfig(**spec.chunking),
        }
    )


def base_table(settings: Settings) -> str:
    """The configured table (LanceDB) or collection (MongoDB) name."""
    return settings.store.table if settings.store.kind == "lancedb" else settings.store.collection


def now_utc() -> datetime:
    return datetime.now(UTC)


def with_times(record: GenerationRecord, **changes: Any) -> GenerationRecord:
    return replace(record, updated_at=now_utc(), **changes)
