"""The lineage a run sends, checked against the OpenLineage specification's own JSON
schemas (tests/openlineage_spec.py; needs OPENLINEAGE_SPEC_DIR).

A whole event of a run is valid; each of a set of broken copies (a field missing, a
wrong type, an event type the spec does not know, a run id that is no UUID, a
negative count, a facet naming a schema that exists nowhere) is not, and the error
names where.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rag_ingest.lineage import DatasetName, GateAssertion, RunLineage
from rag_ingest.lineage_facets import RUN_FACET_KEY, operator_lineage
from tests.openlineage_spec import needs_spec, spec_schemas

pytestmark = needs_spec


def run_event() -> dict[str, Any]:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde

    lineage = RunLineage(
        source_name="docs",
        status="success",
        read=DatasetName("file", "/data/docs"),
        written=DatasetName("file", "/db/chunks.lance"),
        generation="gen-abc",
        counts=dict.fromkeys(
            (
                "documents_new documents_changed documents_unchanged documents_deleted "
                "quarantined chunks_embedded chunks_written chunks_deleted"
            ).split(),
            3,
        ),
        assertions=(
            GateAssertion("documents", "doc_id_unique", "expect_column_values_to_be_unique",
                          "doc_id", True),
            GateAssertion("chunks", "rows", "expect_table_row_count_to_be_between", None, False),
        ),  # fmt: skip
    )
    found = operator_lineage(lineage)
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-08T00:00:00.000000+00:00",
        run=Run(runId=str(uuid.uuid4()), facets=found.run_facets),
        job=Job(namespace="rag-ingest", name="rag_ingest__docs.report"),
        producer="https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
        inputs=found.inputs,
        outputs=found.outputs,
    )
    return dict(Serde.to_dict(event))


def test_a_runs_event_is_valid_by_the_specification() -> None:
    spec = spec_schemas()
    event = run_event()
    assert spec.errors(event) == []
    # Every schema the event names was found: the event's, two standard facets, ours.
    assert len(spec.versions) == 4, spec.versions


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: event.pop(key)


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no event time": (_drop("eventTime"), "'eventTime' is a required property"),
    "no producer": (_drop("producer"), "'producer' is a required property"),
    "unknown event type": (
        lambda e: e.update(eventType="DONE"),
        "'DONE' is not one of",
    ),
    "run id no uuid": (
        lambda e: e["run"].update(runId="run-1"),
        "'run-1' is not a 'uuid'",
    ),
    "job without a name": (lambda e: e["job"].pop("name"), "'name' is a required property"),
    "assertion success as text": (
        lambda e: e["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0].update(
            success="yes"
        ),
        "'yes' is not of type 'boolean'",
    ),
    "assertions missing": (
        lambda e: e["inputs"][0]["inputFacets"]["dataQualityAssertions"].pop("assertions"),
        "'assertions' is a required property",
    ),
    "row count as text": (
        lambda e: e["outputs"][0]["outputFacets"]["outputStatistics"].update(rowCount="40"),
        "'40' is not of type 'integer'",
    ),
    "negative count": (
        lambda e: e["run"]["facets"][RUN_FACET_KEY].update(chunksWritten=-1),
        "-1 is less than the minimum of 0",
    ),
    "facet of no known schema": (
        lambda e: e["run"]["facets"][RUN_FACET_KEY].update(
            _schemaURL="https://example.com/Nowhere.json#/$defs/Nowhere"
        ),
        "no schema 'Nowhere.json'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_event_is_not_valid_and_the_error_says_where(case: str) -> None:
    spec = spec_schemas()
    event = copy.deepcopy(run_event())
    breaks, message = BROKEN[case]
    breaks(event)
    errors = spec.errors(event)
    assert any(message in error for error in errors), errors
