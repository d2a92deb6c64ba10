"""Quality gates, in one place.

- `suites`: the suites (JSON in `quality/expectations/`, one per gate), their
  overrides, and running one with Great Expectations.
- `facts`: the per-row facts each suite checks, derived from staged output.
- `gates`: when each gate runs, with which run-time parameters.
- `results`: what a gate found, and the error a failed gate raises.

This module exports the light parts only (no pandas, no Great Expectations).
"""

from __future__ import annotations

from rag_ingest.quality.results import ExpectationOutcome, GateFailed, GateResult
from rag_ingest.quality.suites import (
    PACKAGED_SUITES,
    STAGES,
    apply_overrides,
    load_suite,
    run_gate,
)

__all__ = [
    "PACKAGED_SUITES",
    "STAGES",
    "ExpectationOutcome",
    "GateFailed",
    "GateResult",
    "apply_overrides",
    "load_suite",
    "run_gate",
]
