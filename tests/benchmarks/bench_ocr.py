"""OCR of scanned pages: throughput on this CPU and character error rate at 200 dpi.

    make bench-ocr                         (PAGES=20 by default)

Pages are rendered from known text (SciFact abstracts, wrapped to 80
characters, 30 lines a page, 12 pt type) into an image-only PDF: a scan
with no text layer. `parse_file` reads it with `parsing.ocr: auto`, as the
extract stage does (pypdfium2 renders, Tesseract recognises), and each
page's text is compared with what was printed on it: character error rate
is the Levenshtein distance over the printed length. The baseline, in the
same run, is the same pages as a PDF with a text layer (fpdf2), read by
pypdf alone.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

from tests.benchmarks.common import SCIFACT, parser_for, save_json

LINES_PER_PAGE = 30


def page_texts(pages: int) -> list[tuple[str, ...]]:
    words: list[str] = []
    if (SCIFACT / "corpus.jsonl").exists():
        with open(SCIFACT / "corpus.jsonl") as lines:
            for line in lines:
                words += json.loads(line)["text"].split()
                if len(words) > pages * LINES_PER_PAGE * 14:
                    break
    else:
        words = (
            "the pipeline reads every scanned page at two hundred dots per inch " * 5000
        ).split()
    wrapped = textwrap.wrap(" ".join(words), 80)
    return [tuple(wrapped[n * LINES_PER_PAGE : (n + 1) * LINES_PER_PAGE]) for n in range(pages)]


def text_pdf(texts: list[tuple[str, ...]]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for lines in texts:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 6, line.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN",
                     new_y="NEXT")  # fmt: skip
    return bytes(pdf.output())


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--pages", type=int, default=int(os.environ.get("PAGES", 20)))
    parser.add_argument("--dpi", type=int, default=200)
    args = parser.parse_args(argv)

    from rag_ingest.parsing import OcrSettings, ParseContext, parse_file
    from rag_ingest.parsing.includes import Includes
    from tests.documents import character_error_rate, scanned_pdf

    texts = page_texts(args.pages)
    scan = scanned_pdf(dpi=args.dpi, texts=texts)
    context = ParseContext(Includes(None, "scan.pdf"), OcrSettings(mode="auto", dpi=args.dpi))
    started = time.perf_counter()
    document = parse_file("scan.pdf", scan, context)
    ocr_seconds = time.perf_counter() - started
    starts = [*document.page_starts, len(document.text) + 2]  # type: ignore[misc]
    rates = [
        character_error_rate("\n".join(lines), document.text[starts[n] : starts[n + 1] - 2])
        for n, lines in enumerate(texts)
    ]
    confidences = [page["confidence"] for page in document.notes["pages"]]  # type: ignore[union-attr,index]
    layered = text_pdf(texts)
    started = time.perf_counter()
    parse_file("text.pdf", layered, context)
    text_seconds = time.perf_counter() - started
    results = {
        "pages": args.pages,
        "dpi": args.dpi,
        "ocr_pages_per_second": args.pages / ocr_seconds,
        "text_layer_pages_per_second": args.pages / text_seconds,
        "cer_mean": sum(rates) / len(rates),
        "cer_max": max(rates),
        "confidence_mean": sum(confidences) / len(confidences),
    }
    print(f"{args.pages} scanned pages at {args.dpi} dpi, {LINES_PER_PAGE} lines of 12 pt each")
    print(f"  OCR:        {results['ocr_pages_per_second']:.2f} pages/s "
          f"({ocr_seconds:.1f} s), mean confidence {results['confidence_mean']:.1f}")  # fmt: skip
    print(f"  text layer: {results['text_layer_pages_per_second']:.1f} pages/s "
          f"(the same pages with a text layer, pypdf alone)")  # fmt: skip
    print(f"  character error rate: mean {results['cer_mean']:.2%}, worst page "
          f"{results['cer_max']:.2%}")  # fmt: skip
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
