"""Word, PowerPoint, Excel, EPUB, e-mail and scans: structure kept, hostile files refused."""

from __future__ import annotations

import io
import resource
import zipfile

import pytest

from rag_ingest.parsing import OcrSettings, ParseContext, ParseError, parse_file
from rag_ingest.parsing.context import ArchiveLimits
from rag_ingest.parsing.includes import Includes
from tests import documents


def with_ocr(mode: str = "auto", **limits: int) -> ParseContext:
    return ParseContext(Includes(None, "x"), OcrSettings(mode=mode), ArchiveLimits(**limits))


def refused(name: str, data: bytes, context: ParseContext | None = None) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_file(name, data, context)
    return caught.value


# ---------------------------------------------------------------- structure


def test_word_headings_lists_and_tables_in_order_without_headers_and_footers() -> None:
    doc = parse_file("report.docx", documents.docx_bytes())
    assert (doc.format, doc.title) == ("docx", "Quarterly Report")
    assert doc.text.index("# Revenue") < doc.text.index("## Figures")
    assert "- North grew most\n\n- South held steady" in doc.text
    table = "| Region | Q1 | Q2 |\n| --- | --- | --- |\n| North | 10 | 14 |\n| South | 9 | 9 |"
    assert table in doc.text
    assert doc.text.index(table) < doc.text.index("Closing remarks after the table.")
    assert "CONFIDENTIAL HEADER" not in doc.text and "FOOTER" not in doc.text


def test_powerpoint_one_section_per_slide_with_its_notes() -> None:
    doc = parse_file("launch.pptx", documents.pptx_bytes())
    assert (doc.format, doc.title) == ("pptx", "Launch Plan")
    sections = [line for line in doc.text.split("\n") if line.startswith("# ")]
    assert sections == ["# Launch Plan", "# Milestones", "# Budget"]
    assert doc.text.count("Milestones") == 1  # the title is the heading, not repeated
    assert "Beta in March\n  - Invite early users" in doc.text
    assert "Notes: Stress the March date." in doc.text
    assert "| Item | Cost |\n| --- | --- |\n| Ads | 500 |" in doc.text
    assert doc.notes["slides"] == 3


def test_excel_one_table_per_sheet_with_values_not_formulas() -> None:
    doc = parse_file("orders.xlsx", documents.xlsx_bytes())
    assert (doc.format, doc.title) == ("xlsx", "Order book")
    assert (
        "# Orders\n\n| Order | Customer | Placed | Total |\n| --- | --- | --- | --- |" in doc.text
    )
    assert "| 1001 | Ann | 2026-03-01 | 19.5 |" in doc.text  # the empty column is gone
    assert "# People\n\n| Name | Team |" in doc.text


def test_excel_with_a_million_empty_rows_stops_at_the_row_limit_and_says_so() -> None:
    data = documents.xlsx_bytes(empty_rows_before_last=1_000_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    doc = parse_file("sparse.xlsx", data, with_ocr(max_sheet_rows=50_000))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "far away" not in doc.text and "| 1002 | Bob |" in doc.text
    assert doc.notes["sheets_truncated_at_row"] == {"Orders": 50_001}
    assert grown_mib < 200  # streamed, not loaded


def test_epub_chapters_in_reading_order() -> None:
    doc = parse_file("guide.epub", documents.epub_bytes())
    assert (doc.format, doc.title) == ("epub", "The Field Guide")
    assert doc.text.index("# Birds") < doc.text.index("# Trees")
    assert "- Robin\n\n- Wren" in doc.text
    assert "| Tree | Age |\n| --- | --- |\n| Oak | 300 |" in doc.text


def test_email_headers_are_metadata_and_text_attachments_are_read() -> None:
    doc = parse_file("notes.eml", documents.eml_bytes())
    assert (doc.format, doc.title) == ("email", "Release notes for 2.0")
    assert doc.metadata == {
        "subject": "Release notes for 2.0",
        "from": "Ann Writer <ann@example.org>",
        "date": "Tue, 01 Dec 2026 09:30:00 +0000",
    }
    assert doc.text.startswith("Hello team,\n\nVersion 2.0 ships on Friday.")
    assert "## Attachment: changes.md\n\n# Changes\n\n- faster search" in doc.text
    assert doc.notes == {"attachments_not_read": ["logo.png"]}


def test_a_ruled_pdf_table_becomes_a_pipe_table_in_reading_order() -> None:
    doc = parse_file("figures.pdf", documents.pdf_with_table())
    table = "| Region | Q1 | Q2 |\n| --- | --- | --- |\n| North | 10 | 14 |\n| South | 9 | 9 |"
    assert table in doc.text, doc.text
    assert doc.text.index("Quarterly figures") < doc.text.index(table)
    assert doc.text.index(table) < doc.text.index("Closing remarks")
    assert doc.notes["tables"] == 1


def test_pages_that_draw_no_lines_are_never_handed_to_the_table_finder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pdfplumber

    from tests.unit.test_parsing import make_pdf

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pdfplumber opened a PDF without rulings")

    monkeypatch.setattr(pdfplumber, "open", refuse)
    doc = parse_file("prose.pdf", make_pdf(["Only prose here.", "And here."]))
    assert "Only prose here." in doc.text and "tables" not in doc.notes


# ---------------------------------------------------------------- OCR


@pytest.mark.ocr
def test_a_scanned_pdf_is_read_by_ocr_with_its_path_and_confidence(tesseract: None) -> None:
    doc = parse_file("scan.pdf", documents.scanned_pdf(pages=2), with_ocr("auto"))
    expected = "\n".join(documents.SCAN_LINES)
    first_page = doc.text[: doc.page_starts[1]]  # type: ignore[index]
    assert documents.character_error_rate(expected, first_page) <= 0.02, first_page
    pages = doc.notes["pages"]
    assert [page["path"] for page in pages] == ["ocr", "ocr"]  # type: ignore[index,union-attr]
    assert all(page["confidence"] > 80 for page in pages)  # type: ignore[index,union-attr]
    assert "low_confidence_pages" not in doc.notes


@pytest.mark.ocr
def test_a_page_below_the_confidence_floor_is_reported(tesseract: None) -> None:
    context = ParseContext(Includes(None, "x"), OcrSettings(mode="auto", min_confidence=99.9))
    doc = parse_file("scan.pdf", documents.scanned_pdf(), context)
    assert doc.notes["low_confidence_pages"] == [1]
    assert "Invoice number 4711" in doc.text  # reported, and still kept


def test_with_ocr_off_a_scan_is_quarantined_as_empty() -> None:
    assert refused("scan.pdf", documents.scanned_pdf(), with_ocr("off")).reason == "empty_text"
    assert refused("scan.png", documents.image_bytes(), with_ocr("off")).reason == "ocr_off"


@pytest.mark.ocr
@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "TIFF"])
def test_image_files_are_read_by_ocr(tesseract: None, image_format: str) -> None:
    doc = parse_file(f"scan.{image_format.lower()}", documents.image_bytes(image_format))
    assert doc.format == "image"
    assert "quick brown fox" in doc.text
    assert doc.notes["pages"][0]["path"] == "ocr"  # type: ignore[index]


def test_ocr_needed_but_tesseract_missing_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    error = refused("scan.pdf", documents.scanned_pdf(), with_ocr("auto"))
    assert error.reason == "ocr_unavailable"
    assert "apt-get install tesseract-ocr" in error.detail


# ---------------------------------------------------------------- hostile input


def test_a_zip_bomb_named_docx_is_refused_before_it_is_unpacked() -> None:
    bomb = documents.zip_bomb(each_bytes=300 * 1024 * 1024)
    assert len(bomb) < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = refused("bomb.docx", bomb)
    assert error.reason == "too_large" and "unpacks to 314,572,8" in error.detail
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50


def test_an_archive_with_too_many_entries_is_refused() -> None:
    error = refused("many.xlsx", documents.many_entries(200), with_ocr(max_entries=100))
    assert error.reason == "too_many_entries" and "200 entries" in error.detail


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".epub"])
def test_corrupt_and_truncated_archives_are_refused_with_a_reason(suffix: str) -> None:
    writer = {
        ".docx": documents.docx_bytes,
        ".pptx": documents.pptx_bytes,
        ".xlsx": documents.xlsx_bytes,
        ".epub": documents.epub_bytes,
    }[suffix]
    data = writer()
    assert refused(f"a{suffix}", b"PK\x03\x04 not really a zip").reason == "corrupt_archive"
    assert refused(f"b{suffix}", data[: len(data) // 2]).reason == "corrupt_archive"
    # A valid zip whose parts are damaged: garbage in place of the main XML part.
    main = {".docx": "word/document.xml", ".pptx": "ppt/presentation.xml",
            ".xlsx": "xl/workbook.xml", ".epub": "META-INF/container.xml"}[suffix]  # fmt: skip
    damaged = documents.with_replaced_entry(data, main, b"<<not xml")
    assert refused(f"c{suffix}", damaged).reason == "corrupt_archive"


def test_a_password_protected_office_file_is_refused_as_encrypted() -> None:
    # Office writes an encrypted document as an OLE compound file around the package.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096
    error = refused("locked.docx", ole)
    assert error.reason == "encrypted_document" and "password" in error.detail
    # A zip whose entries are encrypted (the traditional PKWARE flag).
    plain = documents.docx_bytes()
    raw = bytearray(plain)
    for entry in zipfile.ZipFile(io.BytesIO(plain)).infolist():
        offset = entry.header_offset
        raw[offset + 6] |= 0x1
    central = raw.rfind(b"PK\x05\x06")
    start = int.from_bytes(raw[central + 16 : central + 20], "little")
    position = start
    while raw[position : position + 4] == b"PK\x01\x02":
        raw[position + 8] |= 0x1
        name, extra, comment = (int.from_bytes(raw[position + k : position + k + 2], "little")
                                for k in (28, 30, 32))  # fmt: skip
        position += 46 + name + extra + comment
    assert refused("zipcrypto.docx", bytes(raw)).reason == "encrypted_document"


def test_xml_entities_in_a_package_are_refused_never_expanded_or_followed() -> None:
    external = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>"
    )
    data = documents.with_replaced_entry(documents.docx_bytes(), "word/document.xml", external)
    error = refused("xxe.docx", data)
    assert error.reason == "xml_entities" and "word/document.xml" in error.detail


def test_macros_and_external_references_are_never_run_or_followed() -> None:
    data = documents.with_replaced_entry(
        documents.docx_bytes(), "word/vbaProject.bin", b"Attribute VB_Name = AutoOpen"
    )
    rels = (
        b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        b'package/2006/relationships"><Relationship Id="rId99" TargetMode="External" '
        b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'attachedTemplate" Target="http://127.0.0.1:9/evil.dotm"/></Relationships>'
    )
    data = documents.with_replaced_entry(data, "word/_rels/settings.xml.rels", rels)
    doc = parse_file("macro.docm", data)  # nothing listens on port 9: a fetch would fail
    assert doc.notes == {"macros_ignored": True}
    assert "Revenue grew" in doc.text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.eml", b"", "empty_file"),
        ("junk.eml", b"\x00\x01\x02", "empty_text"),
        ("noise.png", b"\x89PNG\r\n\x1a\nnot an image", "corrupt_image"),
        ("blank.xlsx", b"", "empty_file"),
    ],
)
def test_other_bad_input_gets_a_reason(name: str, data: bytes, reason: str) -> None:
    assert refused(name, data).reason == reason
