"""Zip-based files (Office, EPUB) opened safely: every limit checked before any entry is read.

A zip's central directory states each entry's unpacked size; Python's zipfile
never inflates an entry past its stated size, so totals checked here bound
what a parser can be made to unpack (a zip bomb named `.docx`). XML entries
that declare a DOCTYPE with entities are refused: entity expansion ("billion
laughs") and external entities (a file or URL read while parsing) are the
two ways XML reaches past its own bytes, and no Office file or EPUB needs them.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from rag_ingest.parsing.base import ParseError
from rag_ingest.parsing.context import ArchiveLimits

# An OLE compound file: what Office writes for a password-protected document
# (an encrypted package), and the legacy binary .doc/.xls/.ppt formats.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_XML_SUFFIXES = (".xml", ".rels", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".svg")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_PROLOG_BYTES = 65_536  # a DOCTYPE comes before the root element, so near the start


def open_archive(data: bytes, limits: ArchiveLimits, kind: str) -> zipfile.ZipFile:
    """The file as a checked zip archive, or a ParseError that says what is wrong."""
    if data.startswith(_OLE_MAGIC):
        raise ParseError(
            "encrypted_document",
            f"not a {kind} package but an OLE compound file: a password-protected "
            "Office file (remove the password to ingest it) or a legacy binary format",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        NotImplementedError,
    ) as exc:
        raise ParseError("corrupt_archive", f"not a readable {kind} (zip): {exc}") from None
    if len(entries) > limits.max_entries:
        raise ParseError(
            "too_many_entries",
            f"the {kind} holds {len(entries):,} entries, over the limit of {limits.max_entries:,}",
        )
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > limits.max_unpacked_bytes:
        raise ParseError(
            "too_large",
            f"the {kind} unpacks to {unpacked:,} bytes, over the limit of "
            f"{limits.max_unpacked_bytes:,} (parsing.max_unpacked_mb)",
        )
    if any(entry.flag_bits & 0x1 for entry in entries):
        raise ParseError("encrypted_document", f"the {kind}'s entries are password-protected")
    for entry in entries:
        if entry.filename.lower().endswith(_XML_SUFFIXES):
            _refuse_entities(archive, entry, kind)
    return archive


def macro_notes(archive: zipfile.ZipFile) -> dict[str, object]:
    """The parse notes of a package with VBA macro projects: noted, never run
    (nothing here runs code)."""
    names = archive.namelist()
    return (
        {"macros_ignored": True} if any(n.lower().endswith("vbaproject.bin") for n in names) else {}
    )


# What a damaged entry raises once a parser reads it (a valid directory over bad data).
CORRUPT_ENTRY_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,  # a part the package's relationships name is missing
    ValueError,  # the readers' own "not a valid package" errors
    TypeError,
    SyntaxError,  # lxml's XMLSyntaxError: a part that is not well-formed XML
    AssertionError,  # lxml's "ElementTree not initialized" for an empty part
    NotImplementedError,  # zipfile: a compression method or zip version it lacks
    OSError,  # zipfile: a seek outside the file (an entry's offset is wrong)
)


@contextmanager
def reading(kind: str, *also: type[Exception]) -> Iterator[None]:
    """Inside: a package's reader at work; a damaged part it meets (or an error of
    the reader's own, `also`) is `corrupt_archive`."""
    try:
        yield
    except ParseError:
        raise
    except (*CORRUPT_ENTRY_ERRORS, *also) as exc:
        raise ParseError("corrupt_archive", f"{kind}: {type(exc).__name__}: {exc}") from None


def _refuse_entities(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, kind: str) -> None:
    try:
        with archive.open(entry) as handle:
            prolog = handle.read(_PROLOG_BYTES)
    except CORRUPT_ENTRY_ERRORS as exc:
        raise ParseError("corrupt_archive", f"{entry.filename}: {exc}") from None
    if _ENTITY.search(prolog):  # entities are declared only inside a DOCTYPE
        raise ParseError(
            "xml_entities",
            f"{entry.filename} in the {kind} declares XML entities (never expanded or "
            "followed: they can read other files or inflate without bound)",
        )
