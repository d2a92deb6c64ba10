"""OCR with Tesseract (Debian's tesseract-ocr, driven by pytesseract): scans and images.

Tesseract's own word confidences (0-100) are averaged per page; a page below
the source's `ocr_min_confidence` is kept but listed in the parse notes, so
the run report shows it. Where OCR is needed and Tesseract is missing, the
file is quarantined with a reason that says how to install it.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Any

from rag_ingest.parsing.base import ParsedDocument, ParseError, file_stem, normalise_text
from rag_ingest.parsing.context import OcrSettings, ParseContext

INSTALL_HINT = (
    "this file needs OCR but Tesseract is not installed: `apt-get install tesseract-ocr` "
    "(Debian/Ubuntu; other languages: tesseract-ocr-<lang>), or set the source's "
    "parsing.ocr: off to quarantine scans instead"
)
MAX_PAGE_PIXELS = 60_000_000  # a rendered page is scaled down to this (an A0 poster at 200 dpi)
MAX_IMAGE_FRAMES = 500


@dataclass(frozen=True)
class PageText:
    """One page's text, the path that produced it, and the OCR confidence."""

    text: str
    path: str  # "text" (the PDF's text layer) | "ocr"
    confidence: float | None = None


def recognise(image: Any, settings: OcrSettings) -> PageText:
    """The text Tesseract reads in a PIL image, lines and paragraphs kept."""
    import pytesseract

    # Spark runs a parse per core already; Tesseract's own threads would only
    # contend with them (its documentation's advice for parallel processes).
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        data = pytesseract.image_to_data(
            image, lang=settings.languages, output_type=pytesseract.Output.DICT
        )
    except pytesseract.TesseractNotFoundError:
        raise ParseError("ocr_unavailable", INSTALL_HINT) from None
    except pytesseract.TesseractError as exc:
        raise ParseError("ocr_failed", f"Tesseract: {exc}") from None
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    confidences = []
    for word, confidence, block, paragraph, line in zip(
        data["text"], data["conf"], data["block_num"], data["par_num"], data["line_num"],
        strict=True,
    ):  # fmt: skip
        if not word.strip():
            continue
        paragraphs.setdefault((block, paragraph), {}).setdefault(line, []).append(word)
        if float(confidence) >= 0:
            confidences.append(float(confidence))
    text = "\n\n".join(
        "\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values()
    )
    mean = round(sum(confidences) / len(confidences), 1) if confidences else 0.0
    return PageText(text, "ocr", mean)


def page_notes(pages: list[PageText], settings: OcrSettings) -> dict[str, object]:
    """What the parse notes record of a document's pages (nothing when no page was OCR'd)."""
    if not any(page.path == "ocr" for page in pages):
        return {}
    low = [
        number
        for number, page in enumerate(pages, start=1)
        if page.confidence is not None and page.confidence < settings.min_confidence
    ]
    notes: dict[str, object] = {
        "pages": [
            {"page": n, "path": p.path, **({"confidence": p.confidence} if p.confidence else {})}
            for n, p in enumerate(pages, start=1)
        ],
        "ocr_pages": sum(page.path == "ocr" for page in pages),
    }
    if low:
        notes["low_confidence_pages"] = low
    return notes


def bounded(image: Any) -> Any:
    """The image, scaled down when it has more pixels than OCR may take."""
    pixels = image.width * image.height
    if pixels <= MAX_PAGE_PIXELS:
        return image
    scale = (MAX_PAGE_PIXELS / pixels) ** 0.5
    return image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))


def parse_image(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    """An image file (PNG, JPEG, TIFF: every frame a page) read by OCR."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if context.ocr.mode == "off":
        raise ParseError(
            "ocr_off", "an image has no text layer and this source's parsing.ocr is off"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            pages = []
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                if number > MAX_IMAGE_FRAMES:
                    break
                pages.append(recognise(bounded(frame.convert("RGB")), context.ocr))
    except ParseError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ParseError("too_large", f"image: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        raise ParseError("corrupt_image", f"{type(exc).__name__}: {exc}") from None
    texts = [normalise_text(page.text) for page in pages]
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + 2
    return ParsedDocument(
        title=file_stem(relative_path),
        text="\n\n".join(texts),
        format="image",
        page_starts=tuple(starts),
        notes=page_notes(pages, context.ocr),
    )
