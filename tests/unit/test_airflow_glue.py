"""The Airflow-facing policy: which failures are final, lease liveness, report status."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from rag_ingest import airflow_glue
from rag_ingest.config import ConfigError
from rag_ingest.lease import SourceBusy
from rag_ingest.pipeline.evaluate import EvaluationFailed
from rag_ingest.pipeline.extract import SensitiveDataFound
from rag_ingest.quality.results import GateFailed, GateResult
from rag_ingest.sync import MassDeleteRefused

FINAL = [
    GateFailed(GateResult("chunks", False, 3, [], 0.1)),
    ConfigError("chunking.max_tokens: too large"),
    MassDeleteRefused("would delete 9 of 10 documents"),
    EvaluationFailed("recall 0.2 below 0.8"),
    SensitiveDataFound("1 document holds a key"),
]


@pytest.mark.parametrize("error", FINAL, ids=lambda e: type(e).__name__)
def test_a_failure_no_retry_can_mend_ends_the_task_at_once(error: Exception) -> None:
    with pytest.raises(AirflowFailException) as ended, airflow_glue.final_failures():
        raise error
    assert ended.value.__cause__ is error and str(error) in str(ended.value)


@pytest.mark.parametrize(
    "error", [SourceBusy("run a holds the source"), ConnectionError("store went away")]
)
def test_a_busy_source_or_a_transient_fault_is_left_to_airflows_retries(error: Exception) -> None:
    with pytest.raises(type(error)), airflow_glue.final_failures():
        raise error


class _TaskInstance:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.asked: list[tuple[str, str]] = []

    def get_dagrun_state(self, dag_id: str, run_id: str) -> Any:
        self.asked.append((dag_id, run_id))
        if isinstance(self.state, Exception):
            raise self.state
        return self.state


@pytest.mark.parametrize(
    ("state", "running"),
    [("queued", True), ("running", True), ("success", False), ("failed", False)],
)
def test_lease_liveness_asks_airflow_for_the_holders_run_state(state: str, running: bool) -> None:
    ti = _TaskInstance(state)
    assert airflow_glue.lease_liveness(ti, "rag_ingest__docs")("manual__a") is running
    assert ti.asked == [("rag_ingest__docs", "manual__a")]


def test_a_holder_whose_state_cannot_be_read_counts_as_running() -> None:
    """Breaking a live run's lease would let two runs write; unknown is never 'over'."""
    ti = _TaskInstance(RuntimeError("execution API unreachable"))
    assert airflow_glue.lease_liveness(ti, "rag_ingest__docs")("manual__a") is True


def test_a_failed_run_fails_its_report_task_naming_the_reason_and_report() -> None:
    airflow_glue.fail_unless_succeeded({"status": "success", "reason": "", "report": "r.json"})
    with pytest.raises(AirflowFailException, match=r"stopped before chunk; see r.json"):
        airflow_glue.fail_unless_succeeded(
            {"status": "failed", "reason": "stopped before chunk", "report": "r.json"}
        )
