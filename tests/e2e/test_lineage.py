"""End to end: every run emits OpenLineage events through Airflow's OpenLineage provider.

The real DAG runs with `airflow dags test` (its own Airflow home) and the
provider's file transport; the events it wrote are read back and checked:
the source location as input, the store's table as output, the run's counts
and every quality gate's expectations, on a successful run and on one whose
gate failed.

What "valid" means here: each event is rebuilt through openlineage-python's
model classes, which the OpenLineage project generates from the
specification's JSON schema (required fields, the event type enum, the ISO
time and UUID checks of its validators), and the run facet of our own is
validated against the JSON schema this package ships. With a copy of the
specification at OPENLINEAGE_SPEC_DIR (it ships in no package this project
can install: tests/openlineage_spec.py), every event and every facet is also
validated against the specification's own schemas.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rag_ingest.dag_runner import DagTestRunner
from rag_ingest.lineage_facets import RUN_FACET_KEY, run_facet_schema
from tests.conftest import PROJECT_ROOT, write_config
from tests.openlineage_spec import SPEC_DIR_VARIABLE, facets_of, spec_schemas

pytestmark = pytest.mark.slow

DAG_ID = "rag_ingest__docs"
NAMESPACE = "rag-ingest-lineage-test"


def events_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def rebuilt(event: dict[str, Any]) -> Any:
    """The event through the spec's generated model: a missing or unknown field, a
    wrong event type, a time without a time zone or a run id that is no UUID raises."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        output_statistics_output_dataset,
    )

    for _, facets in facets_of(event):
        for key, facet in facets.items():
            assert facet["_producer"].startswith("https://"), key
            assert "#/$defs/" in facet["_schemaURL"], key
    assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-")
    inputs = []
    for found in event.get("inputs", []):
        input_facets = dict(found.get("inputFacets", {}))
        if "dataQualityAssertions" in input_facets:
            listed = input_facets["dataQualityAssertions"]["assertions"]
            input_facets["dataQualityAssertions"] = (
                data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[data_quality_assertions_dataset.Assertion(**a) for a in listed]
                )
            )
        inputs.append(
            InputDataset(
                namespace=found["namespace"],
                name=found["name"],
                facets=found.get("facets", {}),
                inputFacets=input_facets,
            )
        )
    outputs = []
    for found in event.get("outputs", []):
        output_facets = dict(found.get("outputFacets", {}))
        if "outputStatistics" in output_facets:
            stats = {k: v for k, v in output_facets["outputStatistics"].items() if k[0] != "_"}
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(**stats)
            )
        outputs.append(
            OutputDataset(
                namespace=found["namespace"],
                name=found["name"],
                facets=found.get("facets", {}),
                outputFacets=output_facets,
            )
        )
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=event["run"].get("facets", {})),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=event["job"].get("facets", {}),
        ),
        producer=event["producer"],
        inputs=inputs,
        outputs=outputs,
    )


def assert_valid(events: list[dict[str, Any]]) -> None:
    """Each event rebuilt through the generated classes; and by the specification's own
    schemas when a copy of it is at hand (OPENLINEAGE_SPEC_DIR)."""
    for event in events:
        rebuilt(event)
    if os.environ.get(SPEC_DIR_VARIABLE):
        spec = spec_schemas()
        problems = {f"{e['job']['name']} {e['eventType']}": spec.errors(e) for e in events}
        assert not any(problems.values()), problems


def report_event(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    (found,) = [
        e for e in events if e["job"]["name"] == f"{DAG_ID}.report" and e["eventType"] == event_type
    ]
    return found


def latest_report(reports: Path) -> dict[str, Any]:
    newest = max(reports.glob("docs/*.json"), key=lambda p: p.stat().st_mtime)
    return dict(json.loads(newest.read_text()))


def test_every_run_emits_lineage_with_its_counts_and_gate_results(
    docs_corpus: Path, tmp_path: Path
) -> None:
    (docs_corpus / "broken.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    config = write_config(tmp_path, docs_corpus)
    events_log = tmp_path / "lineage" / "events.jsonl"
    events_log.parent.mkdir()
    runner = DagTestRunner(config, tmp_path / "airflow", PROJECT_ROOT / "dags")
    runner.env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events_log), "append": True}
    )
    runner.env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = NAMESPACE
    runner.migrate()

    run = runner.test(DAG_ID, "first.log")
    assert run.succeeded, run.tail()
    events = events_of(events_log)
    assert_valid(events)
    # The DAG run's own event and every task's, in the configured namespace. (`dags
    # test` starts its run already running: the scheduler's START is not sent.)
    assert {e["job"]["namespace"] for e in events} == {NAMESPACE}
    dag_events = [e["eventType"] for e in events if e["job"]["name"] == DAG_ID]
    assert dag_events == ["COMPLETE"]
    assert {e["job"]["name"] for e in events if e["eventType"] == "COMPLETE"} >= {
        f"{DAG_ID}.{task}" for task in ("extract", "chunk", "embed", "upsert", "report")
    }
    completed = report_event(events, "COMPLETE")
    report = latest_report(tmp_path / "reports")

    (read,) = completed["inputs"]
    assert (read["namespace"], read["name"]) == ("file", str(docs_corpus.resolve()))
    (written,) = completed["outputs"]
    assert (written["namespace"], written["name"]) == (
        "file",
        str((tmp_path / "lancedb").resolve() / "chunks.lance"),
    )
    counts = report["counts"]
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == counts["chunks_written"] > 0
    facet = completed["run"]["facets"][RUN_FACET_KEY]
    jsonschema.validate(facet, run_facet_schema(), format_checker=jsonschema.FormatChecker())
    assert facet["source"] == "docs" and facet["status"] == "success"
    assert (
        facet["documentsNew"] == counts["documents_new"] == len(list(docs_corpus.glob("*.md"))) - 1
    )
    assert facet["documentsQuarantined"] == counts["quarantined"] == 1
    assert facet["chunksWritten"] == counts["chunks_written"]
    assert facet["chunksDeleted"] == 0
    assert facet["generation"].startswith("gen-")

    # Every expectation of the three gates, as the run report has them.
    assertions = read["inputFacets"]["dataQualityAssertions"]["assertions"]
    expected = {
        f"{gate}.{e['name']}": (e["type"], e["success"])
        for gate, found in report["gates"].items()
        for e in found["expectations"]
    }
    assert {a["name"]: (a["assertion"], a["success"]) for a in assertions} == expected
    assert {name.split(".")[0] for name in expected} == {"documents", "chunks", "embeddings"}
    assert len(assertions) > 10
    assert all(a["success"] for a in assertions)
    # Each task run is a child of the DAG run: one parent run id for all of them.
    dag_run_id = next(e["run"]["runId"] for e in events if e["job"]["name"] == DAG_ID)
    uuid.UUID(dag_run_id)
    parents = {
        e["run"]["facets"]["parent"]["run"]["runId"] for e in events if e["job"]["name"] != DAG_ID
    }
    assert parents == {dag_run_id}

    # A second run whose documents gate fails: the failed report task still tells
    # what was read and which expectation failed; nothing was written.
    config.write_text(
        config.read_text() + "quality:\n  overrides:\n    text_not_empty: {min_value: 10000000}\n"
    )
    events_log.unlink()
    run = runner.test(DAG_ID, "failed.log")
    assert not run.succeeded
    events = events_of(events_log)
    assert_valid(events)
    assert [e["eventType"] for e in events if e["job"]["name"] == DAG_ID] == ["FAIL"]
    failed = report_event(events, "FAIL")
    (read,) = failed["inputs"]
    (written,) = failed["outputs"]
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == 0
    facet = failed["run"]["facets"][RUN_FACET_KEY]
    assert facet["status"] == "failed" and facet["chunksDeleted"] == 0
    failing = [
        a for a in read["inputFacets"]["dataQualityAssertions"]["assertions"] if not a["success"]
    ]
    assert [a["name"] for a in failing] == ["documents.text_not_empty"]
    (reported,) = [
        e
        for e in latest_report(tmp_path / "reports")["gates"]["documents"]["expectations"]
        if not e["success"]
    ]
    assert failing[0]["column"] == reported["column"]
