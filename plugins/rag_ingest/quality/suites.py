"""The quality suites and running them with Great Expectations.

The suites are JSON files in the package's `quality/expectations/` folder
(one per gate; `quality.suites_dir` may name another folder),
readable and editable by a person. Each expectation carries a `meta.name`;
the configuration can override its keyword arguments (`mostly`, bounds) for
all sources (`quality.overrides`) or one (`sources[].quality_overrides`).
Values that depend on the run (the model's token limit, dimension, the
number of chunks to embed) are `{"$PARAMETER": ...}` in the suites and are
supplied here.

A gate validates a small frame of per-row facts derived from the stage's
output (lengths, norms, ids; no text), writes Data Docs (HTML) under the
reports folder, and on failure keeps the failing rows in the staging folder
and raises `GateFailed`, naming every failed expectation and what it saw.
Great Expectations is imported only when a gate runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag_ingest.log_levels import quieten_third_party
from rag_ingest.quality.results import ExpectationOutcome, GateFailed, GateResult

log = logging.getLogger(__name__)

# The gates, in the order a run reaches them.
STAGES = ("documents", "chunks", "embeddings")
PACKAGED_SUITES = Path(__file__).resolve().parent / "expectations"
# The column GE reports failing rows by: the frame's own row number.
_ROW = "row"
_SITE = "rag_ingest"
# The Data Docs index lists this many validations, newest first: about the last
# 100 runs' three gates. Building it reads each listed result.
DATA_DOCS_INDEX_LIMIT = 300
_NO_PAGE = "no page: the index only"


def load_suite(suites_dir: Path, stage: str) -> dict[str, Any]:
    path = suites_dir / f"{stage}.json"
    if not path.exists():
        raise FileNotFoundError(f"quality suite {path} is missing (one JSON file per stage)")
    suite: dict[str, Any] = json.loads(path.read_text())
    names = [e.get("meta", {}).get("name") for e in suite.get("expectations", [])]
    if None in names or len(set(names)) != len(names):
        raise ValueError(f"{path}: every expectation needs a unique meta.name")
    return suite


def apply_overrides(
    suite: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A copy of `suite` with the named expectations' kwargs overridden."""
    known = {e["meta"]["name"] for e in suite["expectations"]}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"quality overrides name unknown expectations of suite '{suite['name']}': "
            f"{', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    expectations = []
    for expectation in suite["expectations"]:
        changes = overrides.get(expectation["meta"]["name"], {})
        expectations.append({**expectation, "kwargs": {**expectation["kwargs"], **changes}})
    return {**suite, "expectations": expectations}


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    examples = details.get("partial_unexpected_list") or []
    return ExpectationOutcome(
        name=str(config.meta.get("name", config.type)),
        type=str(config.type),
        column=config.kwargs.get("column"),
        success=bool(result.success),
        observed=_plain(details.get("observed_value")),
        unexpected_count=details.get("unexpected_count"),
        examples=[_plain(v) for v in examples[:5]],
    )


def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, everything else as is or as text."""
    if hasattr(value, "item"):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def _is_spark(frame: Any) -> bool:
    return type(frame).__module__.startswith("pyspark.")


def _numbered(frame: Any, spark: bool) -> tuple[Any, int]:
    """The frame with a row-number column GE reports failing rows by, and its row count."""
    if spark:
        from pyspark.sql import functions

        numbered = frame.withColumn(_ROW, functions.monotonically_increasing_id()).cache()
        return numbered, int(numbered.count())
    frame = frame.reset_index(drop=True)
    frame[_ROW] = range(len(frame))
    return frame, len(frame)


def _failing_rows(results: list[Any]) -> dict[str, list[int]]:
    """Each failed expectation's failing row numbers, by its meta.name."""
    rows: dict[str, list[int]] = {}
    for result in results:
        if result.success:
            continue
        numbers = [
            int(index[_ROW])
            for index in (result.result or {}).get("unexpected_index_list") or []
            if isinstance(index, Mapping) and _ROW in index
        ]
        if numbers:
            rows[_outcome(result).name] = numbers
    return rows


def _write_failing_rows(frame: Any, spark: bool, failing: dict[str, list[int]], path: Path) -> None:
    """The facts of every failing row, once per expectation it failed (an `expectation`
    column names it), as Parquet: what `quality.failing` turns into files and values."""
    import pandas as pd

    wanted = sorted({row for rows in failing.values() for row in rows})
    if spark:
        rows = frame.filter(frame[_ROW].isin(wanted)).toPandas()
    else:
        rows = frame[frame[_ROW].isin(wanted)]
    parts = [
        rows[rows[_ROW].isin(numbers)].assign(expectation=name) for name, numbers in failing.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_parquet(path, index=False)


def _context(results_dir: Path, data_docs_dir: Path) -> Any:
    """An ephemeral GX context over the source's validation results and Data Docs site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        FilesystemStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Validation results persist in a folder per source, so the Data Docs index
    # lists the gates of past runs too (GE's index drops pages it has no result for).
    config = DataContextConfig(
        store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(results_dir)),
        data_docs_sites={
            _SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": DATA_DOCS_INDEX_LIMIT,
                },
            }
        },
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def build_data_docs_index(results_dir: Path, data_docs_dir: Path) -> None:
    """The Data Docs site's index page: the newest DATA_DOCS_INDEX_LIMIT validations
    (each run's report links its own pages, whatever their age)."""
    if not results_dir.is_dir():
        return  # no gate ever ran for the source
    quieten_third_party()
    # Render no page (an identifier no result has) and build the index.
    _context(results_dir, data_docs_dir).build_data_docs(
        site_names=[_SITE], resource_identifiers=[_NO_PAGE], build_index=True
    )


def run_gate(
    stage: str,
    frame: Any,
    *,
    suites_dir: Path,
    parameters: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]],
    data_docs_dir: Path,
    results_dir: Path,
    evidence_dir: Path,
    run_name: str,
) -> GateResult:
    """Validate `frame` against the stage's suite; raise GateFailed when it fails.

    `frame` is a pandas DataFrame, or a Spark DataFrame for large runs (Great
    Expectations then computes every metric in Spark).
    """
    started = time.perf_counter()
    quieten_third_party()  # before GX's import, which logs at import time
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier

    suite_dict = apply_overrides(load_suite(suites_dir, stage), overrides)
    suite_dict.pop("id", None)
    context = _context(results_dir, data_docs_dir)
    spark = _is_spark(frame)
    source = (
        context.data_sources.add_spark("rag_ingest")
        if spark
        else context.data_sources.add_pandas("rag_ingest")
    )
    batch = source.add_dataframe_asset(stage).add_batch_definition_whole_dataframe("run")
    suite = context.suites.add_or_update(ExpectationSuite(**suite_dict))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(data=batch, suite=suite, name=stage)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{stage}_gate",
            validation_definitions=[validation],
            actions=[],  # its page is rendered below; the site's index by the report task
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_ROW]},
        )
    )
    frame, rows = _numbered(frame, spark)
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=dict(parameters),
        run_id=RunIdentifier(run_name=run_name),
    )
    (validation_result,) = outcome.run_results.values()
    # This validation's page only: the index lists every validation kept, so
    # rebuilding it here would cost a gate more with every run the source ever had.
    context.build_data_docs(
        site_names=[_SITE], resource_identifiers=list(outcome.run_results), build_index=False
    )
    results = list(validation_result.results)
    pages = sorted((data_docs_dir / "validations" / stage).glob(f"{run_name}/*/*.html"))
    failing_path = None
    failing = _failing_rows(results)
    if failing:
        failing_path = str(evidence_dir / f"{stage}-failing-rows.parquet")
        _write_failing_rows(frame, spark, failing, Path(failing_path))
    result = GateResult(
        stage=stage,
        success=bool(outcome.success),
        rows=rows,
        expectations=[_outcome(r) for r in results],
        seconds=round(time.perf_counter() - started, 3),
        engine="spark" if spark else "pandas",
        data_docs=str(pages[-1]) if pages else None,
        failing_rows=failing_path,
    )
    log.info(
        "quality gate %s: %s, %d expectations on %d rows (%s) in %.1f s",
        stage,
        "passed" if result.success else "FAILED",
        len(result.expectations),
        result.rows,
        result.engine,
        result.seconds,
    )
    if not result.success:
        raise GateFailed(result)
    return result
