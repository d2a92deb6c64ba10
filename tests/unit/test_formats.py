"""Supported formats come from one place, the parser registry: a format added
there is parsed, listed as supported and let through by the documents gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rag_ingest.config import ConfigError, Settings, parse_settings
from rag_ingest.parsing import (
    FORMAT_NAMES,
    RECORD_SUFFIXES,
    REGISTRY,
    SUPPORTED_SUFFIXES,
    Format,
    parse_file,
)
from rag_ingest.quality import PACKAGED_SUITES, run_gate
from tests import documents
from tests.unit.test_parsing import make_pdf

SAMPLES = {
    "markdown": b"# Title\n\nSome words about a thing.\n",
    "text": b"Some words about a thing.\n",
    "rst": b"Title\n=====\n\nSome words about a thing.\n",
    "html": b"<html><body><article><h1>Title</h1><p>Some words about a thing, at length "
    b"enough for the extractor to keep it as the main content of the page.</p>"
    b"</article></body></html>",
}


def _settings(**quality: object) -> Settings:
    return Settings.model_validate(
        {"sources": [{"name": "docs", "location": "corpus"}], "quality": quality}
    )


def test_each_suffix_has_one_format_and_records_are_the_parserless_ones() -> None:
    suffixes = [s for f in REGISTRY for s in f.suffixes]
    assert len(suffixes) == len(set(suffixes)) == len(SUPPORTED_SUFFIXES)
    assert len(FORMAT_NAMES) == len(set(FORMAT_NAMES))
    assert set(RECORD_SUFFIXES) == {s for f in REGISTRY if f.parse is None for s in f.suffixes}


FILE_FORMATS = [f for f in REGISTRY if f.parse is not None]


@pytest.mark.ocr
@pytest.mark.parametrize("entry", FILE_FORMATS, ids=lambda f: f.name)
def test_a_file_of_each_registered_format_parses_as_that_format(
    entry: Format, tesseract: None
) -> None:
    name, suffix = entry.name, entry.suffixes[0]
    written = {
        "pdf": lambda: make_pdf(["Some words about a thing."]),
        "docx": documents.docx_bytes,
        "pptx": documents.pptx_bytes,
        "xlsx": documents.xlsx_bytes,
        "epub": documents.epub_bytes,
        "email": documents.eml_bytes,
        "image": documents.image_bytes,
    }
    data = written[name]() if name in written else SAMPLES[name]
    assert parse_file(f"doc{suffix}", data).format == name


def test_the_documents_gate_lets_every_registered_format_through_by_default(
    tmp_path: Path,
) -> None:
    settings = _settings()
    assert settings.allowed_formats == FORMAT_NAMES
    frame = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(len(FORMAT_NAMES))],
            "format": list(FORMAT_NAMES),
            "size": [100] * len(FORMAT_NAMES),
            "text_chars": [50] * len(FORMAT_NAMES),
            "modified_epoch": [1.7e9] * len(FORMAT_NAMES),
        }
    )
    result = run_gate(
        "documents",
        frame,
        suites_dir=PACKAGED_SUITES,
        parameters={
            "allowed_formats": list(settings.allowed_formats),
            "max_file_bytes": 1000,
            "latest_modified_epoch": 2e9,
        },
        overrides={},
        data_docs_dir=tmp_path / "docs",
        results_dir=tmp_path / "gx",
        evidence_dir=tmp_path / "evidence",
        run_name="r",
    )
    assert result.success and result.rows == len(FORMAT_NAMES)


def test_allowed_formats_may_narrow_but_not_name_an_unparsed_format() -> None:
    assert _settings(allowed_formats=["markdown", "pdf"]).allowed_formats == ("markdown", "pdf")
    with pytest.raises(ConfigError, match=r"quality.allowed_formats: no parser makes format doc\b"):
        parse_settings(
            {
                "sources": [{"name": "d", "location": "corpus"}],
                "quality": {"allowed_formats": ["doc"]},
            },
            Path("."),
        )
