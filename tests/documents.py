"""Office files, e-books, e-mails and scans, written by each format's own library.

The parser tests read what real software writes: python-docx, python-pptx,
openpyxl and ebooklib write their formats here, the standard library writes
e-mail, and Pillow renders known text into scanned pages (no committed binaries).
"""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

SCAN_LINES = (
    "Retrieval augmented generation needs clean text.",
    "The quick brown fox jumps over the lazy dog.",
    "Invoice number 4711 is due on the last day of December.",
    "Every scanned page is read by Tesseract at two hundred dpi.",
)


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.sections[0].header.paragraphs[0].text = "CONFIDENTIAL HEADER TEXT"
    document.sections[0].footer.paragraphs[0].text = "PAGE FOOTER TEXT"
    document.add_heading("Quarterly Report", 0)
    document.add_heading("Revenue", 1)
    document.add_paragraph("Revenue grew in every region this quarter.")
    document.add_paragraph("North grew most", style="List Bullet")
    document.add_paragraph("South held steady", style="List Bullet")
    document.add_heading("Figures", 2)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(table.rows, [("Region", "Q1", "Q2"), ("North", "10", "14"),
                                        ("South", "9", "9")], strict=True):  # fmt: skip
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("Closing remarks after the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    title_slide = deck.slides.add_slide(deck.slide_layouts[0])
    title_slide.shapes.title.text = "Launch Plan"
    title_slide.placeholders[1].text = "Spring release"
    bullets = deck.slides.add_slide(deck.slide_layouts[1])
    bullets.shapes.title.text = "Milestones"
    frame = bullets.placeholders[1].text_frame
    frame.text = "Beta in March"
    nested = frame.add_paragraph()
    nested.text = "Invite early users"
    nested.level = 1
    bullets.notes_slide.notes_text_frame.text = "Stress the March date."
    table_slide = deck.slides.add_slide(deck.slide_layouts[5])
    table_slide.shapes.title.text = "Budget"
    shape = table_slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, values in enumerate([("Item", "Cost"), ("Ads", "500"), ("Events", "1200")]):
        for c, value in enumerate(values):
            shape.table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes(empty_rows_before_last: int = 0) -> bytes:
    import datetime as dt

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["Order", "Customer", None, "Placed", "Total"])
    sheet.append([1001, "Ann", None, dt.datetime(2026, 3, 1), 19.5])
    sheet.append([1002, "Bob", None, dt.datetime(2026, 3, 2), 7.0])
    if empty_rows_before_last:
        sheet.cell(row=3 + empty_rows_before_last, column=1, value="far away")
    people = book.create_sheet("People")
    people.append(["Name", "Team"])
    people.append(["Ann", "Sales"])
    book.properties.title = "Order book"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def epub_bytes() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("rag-ingest-test")
    book.set_title("The Field Guide")
    book.set_language("en")
    chapters = []
    for number, body in enumerate(
        (
            "<h1>Birds</h1><p>Robins sing at dawn.</p><ul><li>Robin</li><li>Wren</li></ul>",
            "<h1>Trees</h1><p>Oaks live long.</p><table><tr><th>Tree</th><th>Age</th></tr>"
            "<tr><td>Oak</td><td>300</td></tr></table>",
        ),
        start=1,
    ):
        chapter = epub.EpubHtml(title=f"Chapter {number}", file_name=f"ch{number}.xhtml")
        chapter.content = f"<html><body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.spine = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def pdf_with_table() -> bytes:
    """A text PDF (fpdf2) with prose, a ruled table, then more prose."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Quarterly figures for every region follow in the table below.")
    with pdf.table() as table:
        for values in (("Region", "Q1", "Q2"), ("North", "10", "14"), ("South", "9", "9")):
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.multi_cell(0, 6, "Closing remarks come after the table.")
    return bytes(pdf.output())


def eml_bytes() -> bytes:
    message = EmailMessage()
    message["Subject"] = "Release notes for 2.0"
    message["From"] = "Ann Writer <ann@example.org>"
    message["To"] = "team@example.org"
    message["Date"] = "Tue, 01 Dec 2026 09:30:00 +0000"
    message.set_content("Hello team,\n\nVersion 2.0 ships on Friday.\n")
    message.add_attachment(
        "# Changes\n\n- faster search\n", subtype="markdown", filename="changes.md"
    )
    message.add_attachment(b"\x89PNG\r\n", maintype="image", subtype="png", filename="logo.png")
    return message.as_bytes()


def character_error_rate(expected: str, found: str) -> float:
    """Levenshtein distance over the expected length (whitespace runs as one space)."""
    a, b = " ".join(expected.split()), " ".join(found.split())
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            cost = previous[j - 1] + (char != other)
            current.append(min(previous[j] + 1, current[j - 1] + 1, cost))
        previous = current
    return previous[-1] / max(len(a), 1)


def scanned_page(lines: tuple[str, ...] = SCAN_LINES, dpi: int = 200) -> object:
    """A white page with `lines` printed on it at `dpi`, as a PIL image (a scan)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=int(12 / 72 * dpi))  # 12 pt type
    page = Image.new("L", (int(8.27 * dpi), int((2 + 0.3 * len(lines)) * dpi)), 255)
    draw = ImageDraw.Draw(page)
    for number, line in enumerate(lines):
        draw.text((dpi // 2, dpi // 2 + number * int(0.3 * dpi)), line, fill=0, font=font)
    return page


def scanned_pdf(
    pages: int = 1, dpi: int = 200, texts: list[tuple[str, ...]] | None = None
) -> bytes:
    """A PDF of scanned pages only: images, no text layer (`texts`: each page's lines)."""
    texts = texts or [SCAN_LINES] * pages
    images = [scanned_page(lines, dpi=dpi) for lines in texts]
    out = io.BytesIO()
    images[0].save(out, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])  # type: ignore[attr-defined]
    return out.getvalue()


def image_bytes(image_format: str = "PNG") -> bytes:
    out = io.BytesIO()
    scanned_page().save(out, format=image_format)  # type: ignore[attr-defined]
    return out.getvalue()


def zip_bomb(entries: int = 1, each_bytes: int = 300 * 1024 * 1024) -> bytes:
    """A tiny zip that states it unpacks to `entries` x `each_bytes` (zeros deflate ~1000:1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        chunk = b"\0" * (1024 * 1024)
        for n in range(entries):
            with archive.open(f"word/bomb{n}.xml", "w", force_zip64=True) as handle:
                for _ in range(each_bytes // len(chunk)):
                    handle.write(chunk)
    return out.getvalue()


def many_entries(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for n in range(count):
            archive.writestr(f"e{n}", b"")
    return out.getvalue()


def with_replaced_entry(data: bytes, name: str, content: bytes) -> bytes:
    """The package `data` with entry `name` replaced (or added)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in source.infolist():
            if entry.filename != name:
                archive.writestr(entry, source.read(entry))
        archive.writestr(name, content)
    return out.getvalue()
