"""Operator mistakes and damaged state get a clear error or are skipped, never a crash
(issue 18): state inside a source, a crafted location template, settings that
cannot hold, a damaged report file, control characters in what the CLI prints,
odd paths in the UI's file route."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rag_ingest import config_sections, config_source
from rag_ingest.cli import shown
from rag_ingest.config import ConfigError, parse_settings, render_location
from rag_ingest.reports import latest_run_report, list_freshness_reports, list_run_reports
from rag_ingest.ui import safe_report_path


def _load(data: dict[str, Any], base: Path) -> Any:
    return parse_settings(data, base, origin="rag_ingest.yaml")


def test_staging_reports_or_store_inside_a_source_that_would_list_them_is_refused(
    tmp_path: Path,
) -> None:
    source = {"name": "docs", "location": "."}
    for field, value in (
        ("paths", {"staging": "state/staging"}),
        ("paths", {"reports": "reports"}),
        ("store", {"path": "kb/lancedb"}),
    ):
        elsewhere = {"staging": "/elsewhere/s", "reports": "/elsewhere/r", "models": "/m"}
        other = {"paths": elsewhere, "store": {"path": "/elsewhere/db"}}
        other[field] = {**other[field], **value}
        with pytest.raises(ConfigError, match=r"lies inside sources\[0\]\.location"):
            _load({"sources": [source], **other}, tmp_path)
    # A glob that cannot reach the pipeline's files (Markdown only) is fine.
    _load({"sources": [{**source, "glob": "**/*.md"}]}, tmp_path)
    # And so is state beside the source folder, the usual layout.
    _load({"sources": [{"name": "docs", "location": "docs"}]}, tmp_path)


def test_a_location_template_cannot_reach_python_or_run_anything(tmp_path: Path) -> None:
    assert render_location("drops/{{ ds }}/{{ ds_nodash }}", "2026-01-02") == (
        "drops/2026-01-02/20260102"
    )
    marker = tmp_path / "ran"
    crafted = (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
    )
    with pytest.raises(ConfigError, match="location"):
        render_location(crafted, "2026-01-02")
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"the templates are \{\{ ds \}\}"):
        render_location("drops/{{ yesterday }}", "2026-01-02")


def _float_fields() -> list[tuple[type[BaseModel], str]]:
    models = {
        m
        for module in (config_sections, config_source)
        for m in vars(module).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel
    }
    return [
        (model, name)
        for model in models
        for name, field in model.model_fields.items()
        if field.annotation in (float, float | None)
    ]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_no_setting_takes_an_infinite_or_nan_value(value: float) -> None:
    fields = _float_fields()
    assert len(fields) >= 8  # max_file_mb, max_parse_seconds, norm_tolerance, ...
    for model, name in fields:
        data: dict[str, Any] = {name: value}
        if model is config_source.SourceConfig:
            data |= {"name": "docs", "location": "docs"}
        with pytest.raises(ValueError, match=name):
            model.model_validate(data)


def test_base_dir_in_the_file_is_an_unknown_key_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_dir: Extra inputs are not permitted"):
        _load({"sources": [{"name": "docs", "location": "docs"}], "base_dir": "/"}, tmp_path)


def test_one_damaged_report_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "freshness").mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps({"run_id": "good", "finished_at": "2026"}))
    (folder / "truncated.json").write_text('{"run_id": "bad", "finis')
    (folder / "list.json").write_text("[1, 2]")
    (folder / "freshness" / "f.json").write_text('{"checked_at": ')
    assert [r["run_id"] for r in list_run_reports(tmp_path)] == ["good"]
    assert latest_run_report(tmp_path, "docs")["run_id"] == "good"  # type: ignore[index]
    assert list_freshness_reports(tmp_path, "docs") == []


def test_the_cli_escapes_control_characters_in_what_it_prints() -> None:
    forged = "notes.md\nquarantined: evil.md: fine\x1b[2J\r\x07\x9b"
    printed = shown(forged)
    assert "\n" not in printed and "\x1b" not in printed and "\r" not in printed
    assert printed == "notes.md\\nquarantined: evil.md: fine\\x1b[2J\\r\\x07\\x9b"
    assert shown("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"  # text stays text


def test_odd_paths_in_the_ui_file_route_are_no_such_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "r.html").write_text("<p>report</p>")
    assert safe_report_path(tmp_path, "docs/r.html") == (tmp_path / "docs" / "r.html").resolve()
    for odd in ("docs/r\x00.html", "a" * 5000, "../../etc/passwd", "docs/" + "x/" * 3000):
        assert safe_report_path(tmp_path, odd) is None
