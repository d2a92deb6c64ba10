"""PDF: text per page with pypdf; page boundaries kept as character offsets."""

from __future__ import annotations

import io

from rag_ingest.parsing.base import ParsedDocument, ParseError, file_stem, normalise_text


def parse_pdf(relative_path: str, data: bytes) -> ParsedDocument:
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
        pages = [normalise_text(page.extract_text() or "") for page in reader.pages]
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
    page_starts = []
    parts = []
    offset = 0
    for page_text in pages:
        page_starts.append(offset)
        parts.append(page_text)
        offset += len(page_text) + 2  # the "\n\n" joining pages
    return ParsedDocument(
        title=str(title).strip() if title and str(title).strip() else file_stem(relative_path),
        text="\n\n".join(parts),
        format="pdf",
        page_starts=tuple(page_starts),
    )
