"""One test per format and per kind of bad input, on generated files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest.extract import parse_source_file
from rag_ingest.parsing import (
    ParseError,
    RecordFields,
    RecordProblem,
    normalise_text,
    parse_file,
    parse_records,
)


def make_pdf(pages: list[str], password: str | None = None, title: str | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    data = bytes(pdf.output())
    if password is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------- formats


def test_markdown_keeps_headings_and_drops_markup() -> None:
    source = b"""---
title: Installing, from the front matter
---
# Install **rag-ingest**

Run [make demo](https://example.com) and `make test`.<br>

- first item
- second item

| key | value |
|-----|-------|
| a   | 1     |

```
code  stays
```
"""
    doc = parse_file("guide/install.md", source)
    assert doc.title == "Installing, from the front matter"  # MkDocs' page title
    assert doc.format == "markdown"
    assert doc.text.startswith("# Install rag-ingest\n\nRun make demo and make test.")
    assert "https://example.com" not in doc.text and "**" not in doc.text
    assert "- first item\n\n- second item" in doc.text
    assert "| key | value |\n| --- | --- |\n| a | 1 |" in doc.text
    assert "```\ncode  stays\n```" in doc.text  # code keeps its spacing
    assert "front matter" not in doc.text


def test_restructuredtext_sections_become_headings() -> None:
    source = b"""Guide
=====

Intro with *emphasis*.

Install
-------

Run the demo.

.. include:: /etc/passwd

* a bullet
"""
    doc = parse_file("guide.rst", source)
    assert doc.title == "Guide"
    assert doc.format == "rst"
    assert "# Guide" in doc.text and "## Install" in doc.text
    assert "Intro with emphasis." in doc.text
    assert "- a bullet" in doc.text
    assert "root:" not in doc.text  # file inclusion is switched off


def test_html_main_content_and_title_without_boilerplate() -> None:
    html = b"""<html><head><title>Installing rag-ingest</title></head><body>
<nav><a href='/'>Home</a> | <a href='/about'>About us</a></nav>
<article><h1>Installing rag-ingest</h1>
<p>rag-ingest keeps a knowledge base complete and fresh; install it with make demo.</p>
<h2>Requirements</h2>
<p>You need Python 3.11 and Java 17 for Spark to run locally in this project.</p>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved.</footer></body></html>"""
    doc = parse_file("site/install.html", html)
    assert doc.title == "Installing rag-ingest"
    assert doc.format == "html"
    assert "## Requirements" in doc.text
    assert "You need Python 3.11 and Java 17" in doc.text
    assert "Copyright" not in doc.text and "About us" not in doc.text


def test_pdf_text_per_page_with_page_offsets() -> None:
    data = make_pdf(["First page about Spark.", "Second page about embeddings."], title="Manual")
    doc = parse_file("manual.pdf", data)
    assert doc.title == "Manual"
    assert doc.format == "pdf"
    assert doc.page_starts is not None and len(doc.page_starts) == 2
    second = doc.text[doc.page_starts[1] :]
    assert second.startswith("Second page about embeddings.")
    assert doc.text[: doc.page_starts[1]].strip() == "First page about Spark."


def test_pdf_with_an_empty_password_opens() -> None:
    doc = parse_file("open.pdf", make_pdf(["Readable text."], password=""))
    assert "Readable text." in doc.text


def test_plain_text_detects_encodings() -> None:
    doc = parse_file("notes/readme.txt", "Grüße aus Köln, straße und café.\n".encode("utf-16"))
    assert doc.text == "Grüße aus Köln, straße und café." and doc.encoding == "utf-16"
    doc = parse_file("notes/plain.txt", b"first line\nsecond")
    assert doc.title == "first line" and doc.encoding == "utf-8"
    doc = parse_file(
        "notes/latin.txt", "Überprüfung der Qualität: größer, schöner.".encode("cp1252")
    )
    assert "Qualit" in doc.text and doc.encoding not in (None, "utf-8")
    assert parse_file("notes/readme.txt", ("x" * 300).encode()).title == "readme"


def test_normalisation_is_nfc_collapses_space_and_drops_controls() -> None:
    assert normalise_text("Cafe\u0301  bar \t\x07\n\n\n\nnext  ") == "Caf\u00e9 bar\n\nnext"


def test_beir_jsonl_records_need_no_configuration() -> None:
    lines = [
        {
            "_id": "4983",
            "title": "Microstructural development",
            "text": "Alterations of the brain.",
        },
        {"_id": "5836", "title": "", "text": "Induction of myelodysplasia."},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    docs = list(parse_records("corpus.jsonl", data, RecordFields()))
    assert [d.key for d in docs] == ["4983", "5836"]
    assert docs[0].text == "Microstructural development\n\nAlterations of the brain."
    assert docs[0].title == "Microstructural development"
    assert docs[1].text == "Induction of myelodysplasia." and docs[1].title == "5836"


def test_parquet_records_with_configured_fields_and_metadata() -> None:
    table = pa.table({"key": ["a", "b"], "body": ["alpha text", "beta text"], "lang": ["en", "de"]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    fields = RecordFields(
        id_field="key", title_field=None, text_field="body", metadata_fields=("lang",)
    )
    docs = list(parse_records("part.parquet", sink.getvalue(), fields))
    assert [(d.key, d.text, d.metadata) for d in docs] == [
        ("a", "alpha text", {"lang": "en"}),
        ("b", "beta text", {"lang": "de"}),
    ]


def test_bad_records_are_reported_one_by_one() -> None:
    data = b"\n".join(
        [
            b'{"_id": "1", "text": "fine"}',
            b'{"title": "no id", "text": "x"}',
            b'{"_id": "2", "text": "  "}',
            b"{not json",
            b'{"_id": "1", "text": "again"}',
            b"[1, 2]",
        ]
    )
    items = list(parse_records("c.jsonl", data, RecordFields()))
    problems = [(i.key, i.reason) for i in items if isinstance(i, RecordProblem)]
    assert problems == [
        ("line 2", "missing_id"),
        ("2", "missing_text"),
        ("line 4", "invalid_json"),
        ("1", "duplicate_id"),
        ("line 6", "invalid_record"),
    ]
    assert [i.key for i in items if not isinstance(i, RecordProblem)] == ["1"]


def test_records_carry_their_own_access_labels_from_the_configured_field() -> None:
    lines = [
        {"_id": "1", "text": "salaries", "acl": ["hr", "finance", "hr"]},
        {"_id": "2", "text": "lunch menu", "acl": "public, staff"},
        {"_id": "3", "text": "no field: the source's labels apply"},
        {"_id": "4", "text": "bad labels", "acl": {"hr": True}},
        {"_id": "5", "text": "bad labels", "acl": ["hr", 7]},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    items = list(parse_records("c.jsonl", data, RecordFields(acl_field="acl")))
    docs = {i.key: i.acl for i in items if not isinstance(i, RecordProblem)}
    assert docs == {"1": ("finance", "hr"), "2": ("public", "staff"), "3": None}
    problems = [(i.key, i.reason) for i in items if isinstance(i, RecordProblem)]
    assert problems == [("4", "invalid_labels"), ("5", "invalid_labels")]
    # Without an acl_field the field is just data.
    plain = list(parse_records("c.jsonl", data, RecordFields()))
    assert all(getattr(d, "acl", None) is None for d in plain)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.md", b"", "empty_file"),
        ("a.md", b"   \n\n ", "empty_text"),
        ("a.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary_content"),
        ("a.txt", bytes(range(128, 256)) * 8, "undecodable_text"),
        ("a.exe", b"MZ", "unsupported_type"),
        ("Makefile", b"all:", "unsupported_type"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF", "corrupt_pdf"),
        ("notpdf.pdf", b"this is not a PDF at all", "corrupt_pdf"),
    ],
    ids=[
        "empty",
        "blank",
        "binary-as-md",
        "undecodable",
        "exe",
        "no-suffix",
        "corrupt-pdf",
        "text-as-pdf",
    ],
)
def test_bad_input_is_refused_with_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as error:
        parse_file(name, data)
    assert error.value.reason == reason


def test_encrypted_pdf_is_refused() -> None:
    with pytest.raises(ParseError) as error:
        parse_file("secret.pdf", make_pdf(["Top secret."], password="s3cret"))
    assert error.value.reason == "encrypted_pdf"


def test_source_files_become_document_or_quarantine_rows(tmp_path: Path) -> None:
    fields = RecordFields()
    good = tmp_path / "good.md"
    good.write_text("# Title\n\nbody")
    rows = parse_source_file("docs", str(good), "good.md", good.stat().st_size, None, 1000, fields)
    assert rows[0]["error_reason"] is None and rows[0]["title"] == "Title"
    assert rows[0]["content_hash"] and rows[0]["encoding"] == "utf-8"

    big = tmp_path / "big.md"
    big.write_text("x" * 100)
    rows = parse_source_file("docs", str(big), "big.md", 100, None, 10, fields)
    assert rows[0]["error_reason"] == "too_large" and rows[0]["text"] is None

    rows = parse_source_file("docs", str(tmp_path / "gone.md"), "gone.md", 1, None, 10, fields)
    assert rows[0]["error_reason"] == "unreadable"

    records = tmp_path / "c.jsonl"
    records.write_text(
        '{"_id": "../a/b", "text": "t"}\n{"_id": "x"}\n{"_id": "bell\\u0007", "text": "t"}\n'
    )
    rows = parse_source_file("docs", str(records), "c.jsonl", 10, None, 1000, fields)
    # A path-like id is only a key (ids are hashed); a control character is refused.
    assert [r["error_reason"] for r in rows] == [None, "missing_text", "invalid_id"]
    assert rows[0]["uri"].endswith("c.jsonl#../a/b") and len(rows[0]["doc_id"]) == 32


def test_access_labels_fail_closed_for_every_empty_shape() -> None:
    """Only a record without the field takes the source's labels; an empty value is nobody."""
    records = [
        {"_id": "list", "text": "t", "acl": []},
        {"_id": "text", "text": "t", "acl": ""},
        {"_id": "blanks", "text": "t", "acl": " , ,"},
        {"_id": "blank-items", "text": "t", "acl": ["", "  "]},
        {"_id": "null", "text": "t", "acl": None},
        {"_id": "missing", "text": "t"},
        {"_id": "one", "text": "t", "acl": [" hr "]},
    ]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    items = parse_records("c.jsonl", data, RecordFields(acl_field="acl"))
    acl = {i.key: i.acl for i in items if not isinstance(i, RecordProblem)}
    assert acl == {
        "list": (), "text": (), "blanks": (), "blank-items": (), "null": (),
        "missing": None, "one": ("hr",),
    }  # fmt: skip
    rows = parse_source_file_rows(data, ("public",))
    assert rows["missing"] == ["public"] and rows["one"] == ["hr"]
    assert all(rows[key] == [] for key in ("list", "text", "blanks", "blank-items", "null"))


def parse_source_file_rows(data: bytes, labels: tuple[str, ...]) -> dict[str, list[str]]:
    """The access labels extract stores per record key, with the source's `labels`."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.jsonl"
        path.write_bytes(data)
        rows = parse_source_file(
            "docs", str(path), "c.jsonl", len(data), None, 10**6,
            RecordFields(acl_field="acl"), labels,
        )  # fmt: skip
    return {r["uri"].rpartition("#")[2]: r["acl"] for r in rows}
