"""Freshness and drift checks of one source against what the store holds.

Every check is a pure function over small tables (the source listing, the
store's per-chunk facts, run reports, a baseline), so each is unit-tested by
planting its condition. Listing the source is all the I/O a check of
staleness needs: nothing is parsed or embedded here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag_ingest.generations import GenerationRecord, Pointer, status

# Per-chunk facts a freshness check reads from the store (no text, no vectors).
STORE_FACTS = ("chunk_id", "doc_id", "uri", "modified_at", "ingested_at", "model_id", "token_count")
# Token-count bins of the chunk-length drift check (upper edges; the last is open).
LENGTH_BINS = (16, 32, 64, 96, 128, 160, 192, 224, 256)


@dataclass(frozen=True)
class Finding:
    """One check of one source: what was seen against what is allowed."""

    source: str
    check: str
    ok: bool
    observed: Any
    threshold: Any
    detail: str = ""
    examples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        verdict = "ok" if self.ok else "BREACH"
        text = f"{self.source}: {self.check} {verdict}: observed {self.observed}"
        text += f", threshold {self.threshold}"
        if self.detail:
            text += f" ({self.detail})"
        return text


def file_uri(chunk_uri: str) -> str:
    """The file a stored chunk came from: a record's uri is `<file>#<record key>`."""
    return chunk_uri.partition("#")[0]


def _aware(moment: Any) -> datetime | None:
    if moment is None or (isinstance(moment, float) and math.isnan(moment)):
        return None
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stale_and_new(
    source: str,
    listing: Mapping[str, datetime | None],
    stored: Sequence[Mapping[str, Any]],
    allowed: int,
) -> list[Finding]:
    """Files modified after their stored version, and files not stored at all.

    `listing` maps a file uri to its modified time now; `stored` holds the
    store's per-chunk facts (each chunk carries its file's modified time as
    it was when ingested).
    """
    stored_version: dict[str, datetime] = {}
    for chunk in stored:
        modified = _aware(chunk["modified_at"])
        uri = file_uri(str(chunk["uri"]))
        if modified is not None and (uri not in stored_version or modified > stored_version[uri]):
            stored_version[uri] = modified
        stored_version.setdefault(uri, datetime.min.replace(tzinfo=UTC))
    stale = []
    for uri, modified in listing.items():
        now_modified = _aware(modified)
        if uri in stored_version and now_modified is not None:
            if now_modified > stored_version[uri]:
                stale.append(uri)
    stale.sort()
    new = sorted(uri for uri in listing if uri not in stored_version)
    return [
        Finding(
            source,
            "stale_documents",
            len(stale) <= allowed,
            len(stale),
            allowed,
            "source files modified after the version in the store was ingested",
            stale[:10],
        ),
        Finding(
            source,
            "new_documents",
            len(new) <= allowed,
            len(new),
            allowed,
            "source files not ingested yet",
            new[:10],
        ),
    ]


def last_success_age(
    source: str, reports: Iterable[Mapping[str, Any]], sla_hours: float | None, now: datetime
) -> Finding:
    """Hours since the source's last successful ingestion, against its SLA."""
    finished = [
        _aware(r.get("finished_at"))
        for r in reports
        if r.get("status", "success") == "success" and r.get("finished_at")
    ]
    latest = max((f for f in finished if f is not None), default=None)
    if sla_hours is None:
        observed = None if latest is None else round((now - latest).total_seconds() / 3600, 2)
        return Finding(source, "last_success_age_hours", True, observed, None, "no SLA configured")
    if latest is None:
        return Finding(
            source, "last_success_age_hours", False, None, sla_hours, "never ingested successfully"
        )
    age = (now - latest).total_seconds() / 3600
    return Finding(
        source,
        "last_success_age_hours",
        age <= sla_hours,
        round(age, 2),
        sla_hours,
        f"last successful run finished {latest.isoformat()}",
    )


def consistency(
    source: str,
    listing: Mapping[str, datetime | None],
    stored: Sequence[Mapping[str, Any]],
    parsed_doc_ids: Iterable[str] | None,
    snapshot: bool,
) -> list[Finding]:
    """Chunks whose file is gone from the source; documents the store holds no chunk of.

    `parsed_doc_ids` are the documents the last successful run parsed (None
    when its staging files are gone). A partitioned source lists one interval
    at a time, so its chunks of other intervals are not orphans.
    """
    findings = []
    if snapshot:
        orphans = sorted({c["chunk_id"] for c in stored if file_uri(str(c["uri"])) not in listing})
        findings.append(
            Finding(
                source,
                "chunks_without_source_document",
                not orphans,
                len(orphans),
                0,
                "stored chunks whose file is gone from the source",
                orphans[:10],
            )
        )
    if parsed_doc_ids is not None:
        stored_docs = {c["doc_id"] for c in stored}
        missing = sorted(set(parsed_doc_ids) - stored_docs)
        findings.append(
            Finding(
                source,
                "documents_without_chunks",
                not missing,
                len(missing),
                0,
                "documents the last successful run parsed that have no chunk in the store",
                missing[:10],
            )
        )
    return findings


def model_drift(source: str, stored: Sequence[Mapping[str, Any]], model_id: str) -> Finding:
    other = [c for c in stored if c["model_id"] != model_id]
    models = sorted({str(c["model_id"]) for c in other})
    return Finding(
        source,
        "chunks_from_another_model",
        not other,
        len(other),
        0,
        f"configured model {model_id}" + (f"; found {', '.join(models)}" if models else ""),
        [str(c["chunk_id"]) for c in other[:10]],
    )


def length_histogram(token_counts: Iterable[int]) -> list[float]:
    """Share of chunks per LENGTH_BINS bin (the last bin holds everything longer)."""
    counts = [0] * (len(LENGTH_BINS) + 1)
    total = 0
    for value in token_counts:
        index = next((i for i, edge in enumerate(LENGTH_BINS) if value <= edge), len(LENGTH_BINS))
        counts[index] += 1
        total += 1
    return [c / total for c in counts] if total else [0.0] * len(counts)


def population_stability(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins; empty bins get a small floor."""
    floor = 1e-4
    return float(
        sum(
            (max(a, floor) - max(e, floor)) * math.log(max(a, floor) / max(e, floor))
            for e, a in zip(expected, actual, strict=True)
        )
    )


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass(frozen=True)
class Baseline:
    """Chunk-length distribution and embedding centroid of an accepted state."""

    length_histogram: list[float]
    centroid: list[float]
    chunks: int
    accepted_at: str
    run_id: str | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Baseline | None:
        return cls(**json.loads(path.read_text())) if path.exists() else None


def data_drift(
    source: str,
    baseline: Baseline,
    histogram: Sequence[float],
    centroid: Sequence[float],
    psi_threshold: float,
    centroid_min_cosine: float,
) -> list[Finding]:
    psi = population_stability(baseline.length_histogram, histogram)
    similarity = cosine(baseline.centroid, centroid) if centroid else 0.0
    where = f"against the baseline accepted {baseline.accepted_at}"
    return [
        Finding(
            source,
            "chunk_length_drift_psi",
            psi <= psi_threshold,
            round(psi, 4),
            psi_threshold,
            where,
        ),
        Finding(
            source,
            "embedding_centroid_cosine",
            similarity >= centroid_min_cosine,
            round(similarity, 4),
            centroid_min_cosine,
            where + " (at least)",
        ),
    ]


def drift_findings(
    source: str,
    centroid: list[float],
    stored: Sequence[Mapping[str, Any]],
    last_good_run: str | None,
    now: datetime,
    baseline_path: Path,
    max_length_psi: float,
    min_centroid_cosine: float,
) -> list[Finding]:
    """Drift of chunk lengths and of the embedding centroid against the baseline.

    The first check after a successful run accepts the store as it is as the
    baseline (saved to `baseline_path`); nothing is compared before that.
    """
    if not stored:
        return []
    histogram = length_histogram(int(c["token_count"] or 0) for c in stored)
    baseline = Baseline.load(baseline_path)
    if baseline is None:
        if last_good_run is None:
            return []
        Baseline(histogram, centroid, len(stored), now.isoformat(), last_good_run).save(
            baseline_path
        )
        detail = f"baseline accepted from the store after run {last_good_run}"
        return [Finding(source, "drift_baseline", True, len(stored), None, detail)]
    return data_drift(source, baseline, histogram, centroid, max_length_psi, min_centroid_cosine)


def generation_findings(
    source: str,
    records: Sequence[GenerationRecord],
    pointer: Pointer | None,
    configured: str,
    stall_hours: float,
    now: datetime,
) -> list[Finding]:
    """Which generation serves; how far the configured one has got, and whether its
    build has stalled (no step for `stall_hours`)."""
    by_name = {record.name: record for record in records}
    if pointer is None or pointer.live not in by_name:
        return []
    live = by_name[pointer.live]
    findings = [Finding(source, "generation_live", True, live.name, "-", live.spec.describe())]
    building = by_name.get(configured)
    if building is None or configured == live.name:
        return findings
    state = status(building, pointer)
    progress = f"{building.documents_built}/{building.documents_listed} documents"
    if state != "building":
        detail = f"{state}: {building.reason}" if building.reason else state
        findings.append(Finding(source, "generation_building", True, progress, "-", detail))
        return findings
    last_step = building.updated_at or building.created_at
    idle_hours = (now - last_step).total_seconds() / 3600
    findings.append(
        Finding(
            source,
            "generation_building",
            idle_hours <= stall_hours,
            progress,
            f"a step within {stall_hours:g} h",
            f"{building.name}, last step {idle_hours:.1f} h ago"
            + ("" if idle_hours <= stall_hours else ": stalled"),
        )
    )
    return findings


@dataclass(frozen=True)
class FreshnessReport:
    source: str
    checked_at: str
    findings: list[Finding]

    @property
    def breaches(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "checked_at": self.checked_at,
            "status": "breach" if self.breaches else "fresh",
            "breaches": [f.describe() for f in self.breaches],
            "findings": [asdict(f) for f in self.findings],
        }

    def summary(self) -> str:
        if not self.breaches:
            return f"{self.source}: fresh ({len(self.findings)} checks passed)"
        lines = [f"{self.source}: {len(self.breaches)} freshness breach(es):"]
        return "\n".join(lines + [f"  - {f.describe()}" for f in self.breaches])
