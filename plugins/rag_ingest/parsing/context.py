"""What one document's parse may use beyond its own bytes: its includes, OCR, archive limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag_ingest.parsing.includes import Includes


@dataclass(frozen=True)
class OcrSettings:
    """A source's OCR settings (`parsing.ocr` and the rest; see ParsingConfig)."""

    mode: str = "auto"  # off: never; auto: pages without a text layer; force: every page
    min_confidence: float = 60.0  # a page below this mean word confidence is reported
    languages: str = "eng"  # Tesseract's language codes, `eng+deu`
    dpi: int = 200  # pages are rendered at this resolution for recognition


@dataclass(frozen=True)
class ArchiveLimits:
    """What a zip-based file (Office, EPUB) may unpack to, checked before reading it."""

    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_entries: int = 10_000
    max_sheet_rows: int = 100_000


@dataclass(frozen=True)
class SourceParsing:
    """One source's parsing settings, picklable: Spark sends them to its workers."""

    root: str | None = None  # the source's location: includes resolve inside it
    ocr: OcrSettings = field(default_factory=OcrSettings)
    archives: ArchiveLimits = field(default_factory=ArchiveLimits)

    def context(self, uri: str) -> ParseContext:
        return ParseContext(Includes(self.root, uri), self.ocr, self.archives)


@dataclass
class ParseContext:
    includes: Includes
    ocr: OcrSettings = field(default_factory=OcrSettings)
    archives: ArchiveLimits = field(default_factory=ArchiveLimits)

    @classmethod
    def bare(cls, relative_path: str) -> ParseContext:
        """No includes resolved: a document read on its own (OCR as configured by default)."""
        return cls(Includes(None, relative_path))
