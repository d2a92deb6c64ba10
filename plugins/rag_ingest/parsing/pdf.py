"""PDF: text per page with pypdf, OCR for pages without a text layer; page offsets kept.

With `parsing.ocr: auto` a page whose text layer is empty (a scan) is
rendered with pypdfium2 and read by Tesseract (rag_ingest.parsing.ocr);
`force` reads every page so; `off` leaves a scan empty (a wholly scanned
PDF is then quarantined as empty_text). The parse notes say, per page,
which path produced its text and the OCR confidence.
"""

from __future__ import annotations

import io

from rag_ingest.parsing.base import ParsedDocument, ParseError, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext
from rag_ingest.parsing.ocr import PageText, bounded, page_notes, recognise
from rag_ingest.parsing.pdf_tables import ruled_pages, with_tables


def parse_pdf(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password: those open.
            try:
                if not reader.decrypt(""):
                    raise ParseError("encrypted_pdf", "the PDF needs a password")
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise ParseError("encrypted_pdf", f"cannot decrypt: {exc}") from None
        texts = [page.extract_text() or "" for page in reader.pages]
        ruled = ruled_pages(reader)
        title = reader.metadata.title if reader.metadata and reader.metadata.title else None
    except ParseError:
        raise
    except LimitReachedError as exc:  # a stream that inflates past pypdf's limit (a bomb)
        raise ParseError("too_large", f"a stream inflates past pypdf's limit: {exc}") from None
    except RecursionError:
        raise ParseError("too_deeply_nested", "objects nested too deep") from None
    # pypdf meets a corrupt file with its own errors and with plain Python ones
    # (a filter it does not know is NotImplementedError).
    except (
        PyPdfError,
        NotImplementedError,
        AttributeError,
        ValueError,
        KeyError,
        TypeError,
        OSError,
    ) as exc:
        raise ParseError("corrupt_pdf", f"{type(exc).__name__}: {exc}") from None
    texts, tables = with_tables(data, texts, ruled)
    pages = _with_ocr(data, [normalise_text(text) for text in texts], context)
    page_starts = []
    parts = []
    offset = 0
    for page in pages:
        page_starts.append(offset)
        parts.append(page.text)
        offset += len(page.text) + 2  # the "\n\n" joining pages
    return ParsedDocument(
        title=str(title).strip() if title and str(title).strip() else file_stem(relative_path),
        text="\n\n".join(parts),
        format="pdf",
        page_starts=tuple(page_starts),
        notes={**page_notes(pages, context.ocr), **({"tables": tables} if tables else {})},
    )


def _with_ocr(data: bytes, texts: list[str], context: ParseContext) -> list[PageText]:
    """Each page's text: its text layer, or what OCR reads where the settings ask for it."""
    mode = context.ocr.mode
    wanted = [mode == "force" or (mode == "auto" and not text.strip()) for text in texts]
    if not any(wanted):
        return [PageText(text, "text") for text in texts]
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise ParseError("corrupt_pdf", f"pdfium cannot render it: {exc}") from None
    pages = []
    try:
        for number, text in enumerate(texts):
            if not wanted[number]:
                pages.append(PageText(text, "text"))
                continue
            bitmap = document[number].render(scale=context.ocr.dpi / 72)
            read = recognise(bounded(bitmap.to_pil()), context.ocr)
            pages.append(PageText(normalise_text(read.text), "ocr", read.confidence))
    finally:
        document.close()
    return pages
