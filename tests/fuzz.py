"""Mutated inputs for every parser family: the fuzz campaign's generator.

Seeds are small valid files of each family (Markdown, text, reStructuredText,
HTML, PDF, JSON Lines, Parquet, Word, PowerPoint, Excel, EPUB, e-mail); each
case is one seed put through one mutation: bit flips, truncation, a splice of
two seeds, deep nesting, a re-encoding (UTF-16 without a byte-order mark,
Latin-1, invalid UTF-8, lone surrogates in JSON escapes), or, for the zip
families, bit flips inside one unpacked part, re-packed (plain flips mostly
hit compressed bytes). Image files are left out: their only parser path is
OCR, which costs a second a case. A fixed seed makes every case reproducible:
the name of a failing case is enough to make it again.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from tests import documents
from tests.unit.test_parsing import make_pdf

TEXT = (
    "Retrieval keeps a knowledge base fresh. Each document is parsed, chunked and embedded.\n\n"
    "A second paragraph, with numbers 1, 2 and 3, and a sentence that ends here."
)


def _parquet(rows: dict[str, list[object]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(rows), out)
    return out.getvalue()


def seeds() -> dict[str, bytes]:
    """One valid file per parser family, by suffix."""
    records = [{"_id": f"r{i}", "title": f"Record {i}", "text": TEXT} for i in range(3)]
    return {
        ".md": f"# Guide\n\n## Install\n\n{TEXT}\n\n- one\n- two\n\n| a |\n|---|\n".encode(),
        ".txt": TEXT.encode(),
        ".rst": f"Guide\n=====\n\nInstall\n-------\n\n{TEXT}\n\n* one\n* two\n".encode(),
        ".html": (
            "<html><head><title>Guide</title></head><body><nav>menu</nav><article>"
            f"<h1>Guide</h1><p>{TEXT}</p><ul><li>one</li></ul></article></body></html>"
        ).encode(),
        ".pdf": make_pdf([TEXT, "Second page. " + TEXT]),
        ".jsonl": "".join(json.dumps(r) + "\n" for r in records).encode(),
        ".parquet": _parquet(
            {"_id": [r["_id"] for r in records], "text": [r["text"] for r in records]}
        ),
        ".docx": documents.docx_bytes(),
        ".pptx": documents.pptx_bytes(),
        ".xlsx": documents.xlsx_bytes(),
        ".epub": documents.epub_bytes(),
        ".eml": documents.eml_bytes(),
    }


def _flip_a_part(data: bytes, rng: random.Random) -> bytes:
    """Bit flips inside one entry of a zip package, re-packed; plain flips elsewhere."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return _bit_flips(data, rng)
    entry = rng.choice(archive.infolist())
    content = archive.read(entry)
    return documents.with_replaced_entry(data, entry.filename, _bit_flips(content or b" ", rng))


def _bit_flips(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _splice(data: bytes, rng: random.Random, other: bytes) -> bytes:
    return data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :]


def _nest(suffix: str, rng: random.Random) -> bytes:
    depth = rng.choice([500, 5_000, 20_000])
    if suffix == ".jsonl":
        return ('{"_id": "deep", "text": "x", "n": ' + "[" * depth + "]" * depth + "}\n").encode()
    if suffix == ".html":
        return ("<html><body>" + "<div>" * depth + "deep" + "</div>" * depth).encode()
    if suffix == ".md":
        return (
            "> " * depth + "deep quote\n" + "".join("  " * i + "- x\n" for i in range(200))
        ).encode()
    if suffix == ".rst":
        return "".join("    " * i + "deep\n\n" for i in range(min(depth, 400))).encode()
    return ("(" * depth + "x" + ")" * depth).encode()


def _reencode(data: bytes, suffix: str, rng: random.Random) -> bytes:
    if suffix == ".jsonl":
        return b'{"_id": "s", "text": "lone \\ud800 surrogate"}\n{"_id": "\\udfff", "text": "x"}\n'
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data + b"\xff\xfe\xfd"
    choice = rng.randrange(4)
    if choice == 0:
        return (text + " Ünïcödé ß").encode("utf-16-le")  # no byte-order mark
    if choice == 1:
        return (text + " caf\u00e9 na\u00efve").encode("latin-1", "replace")
    if choice == 2:
        return data + b"\xc3\x28\xa0\xa1"  # invalid UTF-8 sequences
    return ("\x00\x01" + text).encode("utf-16-be")


@dataclass(frozen=True)
class Case:
    name: str  # family-mutation-number: enough to make the case again
    suffix: str
    data: bytes


MUTATIONS: dict[str, Callable[[bytes, str, random.Random, bytes], bytes]] = {
    "flip": lambda data, suffix, rng, other: _bit_flips(data, rng),
    "truncate": lambda data, suffix, rng, other: _truncate(data, rng),
    "splice": lambda data, suffix, rng, other: _splice(data, rng, other),
    "nest": lambda data, suffix, rng, other: _nest(suffix, rng),
    "encode": lambda data, suffix, rng, other: _reencode(data, suffix, rng),
    "part": lambda data, suffix, rng, other: _flip_a_part(data, rng),
}


def cases(per_family: int, seed: int = 18) -> Iterator[Case]:
    """`per_family` mutated files of each family, the mutations taken in turn."""
    rng = random.Random(seed)
    valid = seeds()
    kinds = list(MUTATIONS)
    for suffix, data in valid.items():
        for number in range(per_family):
            kind = kinds[number % len(kinds)]
            other = valid[rng.choice(list(valid))]
            mutated = MUTATIONS[kind](data, suffix, rng, other)
            yield Case(f"{suffix.lstrip('.')}-{kind}-{number}", suffix, mutated)
