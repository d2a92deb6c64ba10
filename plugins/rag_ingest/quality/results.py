"""What a quality gate found: each expectation's outcome, the gate's result, and
the error a failed gate raises. Pure data; Great Expectations is not imported."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rag_ingest.quality.units import shown


class GateFailed(RuntimeError):
    """A stage's output broke its expectations; nothing was written to the store."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        failed = [e for e in result.expectations if not e.success]
        lines = [f"quality gate '{result.stage}' failed {len(failed)} of "]
        lines[0] += f"{len(result.expectations)} expectations on {result.rows} rows:"
        lines += [f"  - {e.describe()}" for e in failed]
        if result.data_docs:
            lines.append(f"  Data Docs: {result.data_docs}")
        if result.failing_rows:
            lines.append(f"  failing rows: {result.failing_rows}")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ExpectationOutcome:
    name: str
    type: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        seen = []
        if self.unexpected_count is not None:
            seen.append(f"{self.unexpected_count} unexpected")
        if self.examples:
            values = ", ".join(shown(self.column, value) for value in self.examples[:5])
            seen.append(f"e.g. [{values}]")
        if self.observed is not None:
            seen.append(f"observed {self.observed}")
        return f"{self.name} ({self.type}{where}): " + (", ".join(seen) or "failed")


@dataclass(frozen=True)
class GateResult:
    stage: str
    success: bool
    rows: int
    expectations: list[ExpectationOutcome]
    seconds: float
    engine: str = "pandas"  # or "spark", for large runs
    data_docs: str | None = None  # the validation's HTML page
    failing_rows: str | None = None  # Parquet of the rows that failed, in staging

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
