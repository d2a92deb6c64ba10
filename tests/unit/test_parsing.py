from __future__ import annotations

import pytest

from rag_ingest.extract import parse_one
from rag_ingest.parsing import ParseError, normalise_text, parse_file


def test_markdown_title_and_front_matter() -> None:
    doc = parse_file("guide/a.md", b"---\ntitle: x\n---\n# Hello  World\n\n\n\nBody\r\n")
    assert doc.title == "Hello World"
    assert doc.text == "# Hello World\n\nBody"
    assert doc.format == "markdown"


def test_plain_text_title_falls_back_to_the_file_name() -> None:
    assert parse_file("notes/readme.txt", b"first line\nsecond").title == "first line"
    assert parse_file("notes/readme.txt", ("x" * 300).encode()).title == "readme"


def test_normalisation_is_nfc_and_collapses_space() -> None:
    assert normalise_text("Cafe\u0301  bar \t\n\n\n\nnext  ") == "Caf\u00e9 bar\n\nnext"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.md", b"", "empty_file"),
        ("a.md", b"   \n\n ", "empty_text"),
        ("a.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary_content"),
        ("a.txt", b"caf\xe9 latin-1", "undecodable_text"),
        ("a.exe", b"MZ", "unsupported_type"),
        ("Makefile", b"all:", "unsupported_type"),
    ],
)
def test_bad_input_is_refused_with_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as error:
        parse_file(name, data)
    assert error.value.reason == reason


def test_parse_one_turns_errors_into_quarantine_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.md"
    good.write_text("# Title\n\nbody")
    big = tmp_path / "big.md"
    big.write_text("x" * 100)
    row = parse_one("docs", str(good), "good.md", good.stat().st_size, max_file_bytes=1000)
    assert row["error_reason"] is None and row["title"] == "Title"
    row = parse_one("docs", str(big), "big.md", 100, max_file_bytes=10)
    assert row["error_reason"] == "too_large" and row["text"] is None
    row = parse_one("docs", str(tmp_path / "gone.md"), "gone.md", 1, max_file_bytes=10)
    assert row["error_reason"] == "unreadable"
