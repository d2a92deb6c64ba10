"""DAG integrity: the DAG files import cleanly, cheaply, and follow the house rules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HEAVY_MODULES = (
    "pyspark",
    "torch",
    "sentence_transformers",
    "great_expectations",
    "pymongo",
    "lancedb",
    "pandas",
)


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert "rag_ingest__docs" in dagbag.dag_ids


def test_every_dag_has_tags_owner_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.max_active_runs == 1, f"{dag_id} may run concurrently on one store"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            if task.task_id == "wait_for_source":  # a sensor that frees its slot between looks
                assert task.mode == "reschedule" and task.timeout > 0
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_tasks_run_in_pipeline_order(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["rag_ingest__docs"]
    order = [
        "wait_for_source",
        "extract",
        "plan_documents",
        "approve_deletions",  # a human-in-the-loop task, skipped when nothing waits
        "chunk",
        "plan_chunks",
        "embed",
        "upsert",
        "build_generation",
        "compare_generations",
        "cutover",
        "report",
    ]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert set(dag.params.keys()) >= {"full_resync", "allow_mass_delete", "rollback"}
    assert dag.get_task("approve_deletions").options == ["Approve", "Reject"]
    assert "approve_cutover" not in dag.task_ids  # the docs source asks for no cutover approval


def test_a_source_asking_for_cutover_approval_gets_the_task_between_verdict_and_switch() -> None:
    from rag_ingest import dag_factory
    from rag_ingest.config import EmbeddingConfig, SourceConfig

    source = SourceConfig(name="kb", location="docs", approval={"cutover": True})  # type: ignore[arg-type]
    dag = dag_factory.build_dag(source, EmbeddingConfig())
    assert dag.get_task("compare_generations").downstream_task_ids == {"approve_cutover"}
    assert dag.get_task("approve_cutover").downstream_task_ids == {"cutover"}
    strict = SourceConfig(name="kb", location="docs", approval={"mass_delete": False})  # type: ignore[arg-type]
    dag = dag_factory.build_dag(strict, EmbeddingConfig())
    assert dag.get_task("plan_documents").downstream_task_ids == {"chunk"}


def test_dag_files_import_no_heavy_module_at_top_level() -> None:
    for path in DAGS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in HEAVY_MODULES, (
                    f"{path.name} imports {name} at top level"
                )


def test_parsing_the_dag_file_loads_no_heavy_module() -> None:
    """Import the DAG file in a fresh interpreter and look at what got loaded."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    for path in DAGS_DIR.glob("*.py"):
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=True,
        )
        assert result.stdout.strip().splitlines()[-1:] in ([], [""]), result.stdout


def test_embed_tasks_take_their_pool_queue_and_concurrency_from_the_config(
    dagbag,  # type: ignore[no-untyped-def]
) -> None:
    from rag_ingest import dag_factory as module
    from rag_ingest.config import EmbeddingConfig, RetriesConfig, SourceConfig

    shipped = dagbag.dags["rag_ingest__docs"].get_task("embed")
    assert shipped.pool == "rag_ingest_embedding"  # rag_ingest.yaml; `make airflow` creates it
    source = SourceConfig(name="gpu_docs", location="docs")
    routed = module.build_dag(
        source, EmbeddingConfig(pool="gpu_embedding", queue="gpu", max_active_tasks=8)
    ).get_task("embed")
    assert (routed.pool, routed.queue, routed.max_active_tis_per_dagrun) == (
        "gpu_embedding",
        "gpu",
        8,
    )
    default = module.build_dag(source, EmbeddingConfig()).get_task("embed")
    assert (default.pool, default.queue) == ("default_pool", "default")
    assert (default.retries, default.retry_delay.total_seconds()) == (2, 30)
    patient = module.build_dag(
        source, EmbeddingConfig(), RetriesConfig(retries=5, retry_delay_seconds=2)
    ).get_task("extract")
    assert (patient.retries, patient.retry_delay.total_seconds()) == (5, 2)
    assert patient.retry_exponential_backoff


def test_freshness_runs_hourly_and_after_any_source_is_ingested(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk import AssetAny

    from rag_ingest.assets import source_asset

    freshness = dagbag.dags["rag_freshness"]
    assert freshness.timetable.timetable.expression == "0 * * * *"
    condition = freshness.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert source_asset("docs").name in {a.name for a in condition.objects}
    report = dagbag.dags["rag_ingest__docs"].get_task("report")
    assert [a.name for a in report.outlets] == [source_asset("docs").name]
    assert {t.task_id for t in freshness.tasks} == {"measure__docs", "check__docs"}


def test_a_watched_source_runs_on_its_changes_and_still_on_its_schedule(tmp_path: Path) -> None:
    """The change asset's watcher survives serialization (what the scheduler and the
    triggerer read), and the DAG never listens to the asset its own runs update."""
    from airflow.serialization.serialized_objects import DagSerialization

    from rag_ingest import dag_factory

    config = tmp_path / "rag_ingest.yaml"
    config.write_text(
        "sources:\n  - {name: kb, location: docs, schedule: '@daily',"
        " watch: {interval_seconds: 5, quiet_seconds: 1}}\n"
        "  - {name: kb2, location: docs, watch: {interval_seconds: 5}}\n"
    )
    dags = dag_factory.ingestion_dags(str(config))
    dag = dags["rag_ingest__kb"]
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.timetable.expression == "0 0 * * *"  # the schedule still runs

    serialized = DagSerialization.to_dict(dag)["dag"]
    (asset,) = [a for a in _assets_in(serialized["timetable"]) if a.get("name")]
    assert asset["name"] == "rag_ingest__kb__changes"
    (watcher,) = asset["watchers"]
    assert watcher["trigger"]["classpath"] == "rag_ingest.watch.DebouncedTrigger"
    feed = str(watcher["trigger"]["kwargs"])
    assert "ListingChangeTrigger" in feed
    assert f"'location': '{tmp_path / 'docs'}'" in feed  # absolute: the triggerer's cwd differs
    assert str(parse_settings_staging(config)) in feed

    only_changes = dags["rag_ingest__kb2"]
    assert type(only_changes.timetable).__name__ == "AssetTriggeredTimetable"
    outlets = {o.name for t in [*dag.tasks, *only_changes.tasks] for o in t.outlets}
    assert not any(name.endswith("__changes") for name in outlets)


def parse_settings_staging(config: Path) -> str:
    from rag_ingest.config import load_settings

    return load_settings(config).staging_dir


def _assets_in(node: object) -> list[dict]:
    """Every serialized asset under a serialized timetable, however nested."""
    found: list[dict] = []
    if isinstance(node, dict):
        if "watchers" in node:
            found.append(node)
        for value in node.values():
            found.extend(_assets_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_assets_in(value))
    return found
