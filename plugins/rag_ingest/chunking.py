"""Token-aware, structure-aware splitting of a document into chunks.

Sizes are counted with the embedding model's own tokenizer, so a chunk never
exceeds what the model reads. The document is tokenized once; the token count
of any span is then two binary searches over the token start offsets.

Cuts are preferred at headings (a chunk never spans two sections), then
blank lines, then line breaks, then sentence ends, then whitespace, and only
as a last resort inside a word. Every chunk is a contiguous span of the
document's text, so its character offsets are exact.

Given the document's title, every chunk after the first starts with a
context line, "Title > Section > Subsection", then a blank line, then its
span: a passage cut from the middle of a document no longer loses what it is
about. The context's tokens count against the limit. On SciFact this lifted
Recall@100 from 0.925 to 0.945 (docs/benchmarks.md, "Retrieval").
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag_ingest import markup
from rag_ingest.chunk_tables import TableHeader, table_parts

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from rag_ingest.config import Settings

# Separator levels, coarsest first: a span too long at one level is split at the next.
# A separator ends before the next line's indentation, which belongs to that line.
_LEVELS = (
    re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*"),  # paragraphs
    re.compile(r"\n(?:[ \t]*\n)*"),  # lines (lists, code)
    re.compile(r"(?<=[.!?])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+(?=\S)")
_WORD_START = re.compile(r"\s+(?=\S)")
_LINE_START = re.compile(r"\n(?=[ \t]*\S)")
# Hard cuts inside a word may tokenize differently when the chunk stands alone;
# chunks this close to the limit are re-counted on their own text.
_RECHECK_MARGIN = 8


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str  # what is embedded and stored: the context line, if any, then the span
    char_start: int  # the span's offsets in the document's text
    char_end: int
    token_count: int
    section: str  # heading path, "Guide > Install"
    context: str = ""  # the context line at the start of `text` ("" for none)


def load_tokenizer(model_path: str | Path) -> Tokenizer:
    """The model's fast tokenizer, without truncation or padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class _TokenIndex:
    """Token positions of one text: counts tokens in any character span."""

    def __init__(self, offsets: Sequence[tuple[int, int]]) -> None:
        self.starts = [start for start, _ in offsets]
        self.ends = [end for _, end in offsets]

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def first_token_at_or_after(self, position: int) -> int:
        return bisect.bisect_left(self.starts, position)


def _sections(text: str) -> list[tuple[int, int, str]]:
    """(start, end, heading path) for each heading-delimited section."""
    matches = markup.headings(text)  # not the `#` lines of fenced code
    bounds = [0] + [m.start() for m in matches] + [len(text)]
    paths = [""]
    stack: list[tuple[int, str]] = []
    for match in matches:
        level = len(match.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, match.group(2).strip()))
        paths.append(" > ".join(title for _, title in stack))
    found = [
        (bounds[i], bounds[i + 1], paths[i])
        for i in range(len(bounds) - 1)
        if text[bounds[i] : bounds[i + 1]].strip()
    ]
    # A heading with nothing under it but subsections would be a chunk of one
    # line; its text reaches the subsections' chunks in their context line.
    return [
        section
        for i, section in enumerate(found)
        if i == len(found) - 1 or not markup.only_heading(text[section[0] : section[1]])
    ]


class Chunker:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap_tokens: int) -> None:
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError(
                f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens} "
                f"with max_tokens {max_tokens}"
            )
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Each text's token spans, for `split`: encoded as one batch, which the
        tokenizer spreads over its threads (10,033 records of the scale benchmark in
        frames of 500: 3.0-3.2 s -> 1.5-1.8 s on 2 cores, the same offsets)."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [encoding.offsets for encoding in encodings]

    def _index_of(self, text: str) -> _TokenIndex:
        """`text`'s own tokens, counted alone (not as a span of a longer text)."""
        return _TokenIndex(self.token_offsets([text])[0])

    def split(
        self,
        text: str,
        title: str | None = None,
        offsets: Sequence[tuple[int, int]] | None = None,
    ) -> list[Chunk]:
        """Chunks of `text`; with a `title`, later chunks carry a context line.
        `offsets`: the text's token spans from `token_offsets`, when already made."""
        if not text.strip():
            return []
        index = _TokenIndex(offsets) if offsets is not None else self._index_of(text)
        sections = _sections(text)
        contexts = {
            section: self._context(title, section) if title else ("", 0)
            for _, _, section in sections
        }
        # The longest context line's tokens are kept free in every chunk.
        reserve = max((tokens for _, tokens in contexts.values()), default=0)
        sizer = self if reserve == 0 else self._smaller_by(reserve)
        spans: list[tuple[int, int, str, TableHeader | None]] = []
        for start, end, section in sections:
            for part_start, part_end, header in table_parts(
                text, index.count, start, end, sizer.max_tokens
            ):
                part_sizer = sizer if header is None else sizer._for_table(header.tokens)
                pieces = part_sizer._atomise(text, index, part_start, part_end, 0)
                merged = [(s, e, section) for s, e in part_sizer._merge(text, index, pieces)]
                checked = part_sizer._enforce_limit(text, index, merged)
                spans.extend((s, e, section_of, header) for s, e, section_of in checked)
        chunks: list[Chunk] = []
        for start, end, section, header in spans:
            start, end = _strip_span(text, start, end)
            if start >= end:
                continue
            context, context_tokens = contexts[section] if chunks else ("", 0)
            span = text[start:end]
            tokens = index.count(start, end) + context_tokens
            if header is not None and start >= header.end:  # a table's later rows
                span, tokens = f"{header.text}\n{span}", tokens + header.tokens
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=f"{context}\n\n{span}" if context else span,
                    char_start=start,
                    char_end=end,
                    token_count=tokens,
                    section=section,
                    context=context,
                )
            )
        return chunks

    def _for_table(self, header_tokens: int) -> Chunker:
        """The sizer of a table's rows: the header row repeated in every chunk
        counts against the limit, and rows need no overlap (the header says
        what each column is)."""
        limit = max(1, self.max_tokens - header_tokens)
        return Chunker(self.tokenizer, limit, 0)

    def _context(self, title: str, section: str) -> tuple[str, int]:
        """The context line of a section's chunks and its token count.

        The title, then the heading path (whose first heading is often the
        title again). Capped at a quarter of the limit, so a long title never
        crowds out the text.
        """
        parts = [" ".join(title.split())] if title.strip() else []
        for heading in section.split(" > ") if section else []:
            if not parts or heading != parts[-1]:
                parts.append(heading)
        line = " > ".join(parts)
        if not line:
            return "", 0
        ends = [end for _, end in self.tokenizer.encode(line, add_special_tokens=False).offsets]
        cap = self.max_tokens // 4
        if len(ends) > cap:
            line = line[: ends[cap - 1]].rstrip()
        return line, min(len(ends), cap)

    def _smaller_by(self, reserve: int) -> Chunker:
        limit = self.max_tokens - reserve
        return Chunker(self.tokenizer, limit, min(self.overlap_tokens, limit // 2))

    def _atomise(
        self, text: str, index: _TokenIndex, start: int, end: int, level: int
    ) -> list[tuple[int, int]]:
        """Spans of at most max_tokens, cut at the coarsest separator that works."""
        if index.count(start, end) <= self.max_tokens:
            return [(start, end)] if text[start:end].strip() else []
        if level == len(_LEVELS):
            return self._hard_cut(index, start, end)
        pieces: list[tuple[int, int]] = []
        cursor = start
        for match in _LEVELS[level].finditer(text, start, end):
            pieces.extend(self._atomise(text, index, cursor, match.start(), level + 1))
            cursor = match.end()
        pieces.extend(self._atomise(text, index, cursor, end, level + 1))
        return pieces

    def _hard_cut(self, index: _TokenIndex, start: int, end: int) -> list[tuple[int, int]]:
        first = index.first_token_at_or_after(start)
        last = index.first_token_at_or_after(end)
        step = max(1, self.max_tokens - _RECHECK_MARGIN)
        cuts = []
        for token in range(first, last, step):
            cut_end = index.ends[min(token + step, last) - 1]
            cuts.append((index.starts[token], min(cut_end, end)))
        return cuts

    def _merge(
        self, text: str, index: _TokenIndex, pieces: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Join neighbouring pieces up to max_tokens, with overlap.

        Plain greedy packing would shift every later boundary when a paragraph
        is inserted early in a long section, changing every later chunk id.
        So a chunk also ends, once it is a third full, after an *anchor*
        piece: one whose text hashes to a multiple of three. Anchors depend
        only on the piece's own text, so after an edit the chunk boundaries
        fall back onto the same anchors within a few chunks, and later chunks
        keep their text and ids (content-defined chunking). The low fill
        threshold is what makes the fall-back quick; measured on SciFact it
        costs no extra embedding work (about 9% more chunks, 7% fewer tokens
        each).
        """
        merged: list[tuple[int, int]] = []
        current: tuple[int, int] | None = None
        min_fill = self.max_tokens // 3
        for piece_start, piece_end in pieces:
            if current is None:
                current = (piece_start, piece_end)
            elif index.count(current[0], piece_end) <= self.max_tokens:
                current = (current[0], piece_end)
            else:
                merged.append(current)
                current = self._next_start(text, index, current, (piece_start, piece_end))
            if index.count(*current) >= min_fill and _is_anchor(text, piece_start, piece_end):
                merged.append(current)
                tail = self._overlap_start(text, index, current)
                current = None if tail is None else (tail, current[1])
                if current is not None and not text[current[0] : current[1]].strip():
                    current = None
        if current is not None and (not merged or current[1] > merged[-1][1]):
            merged.append(current)
        return merged

    def _next_start(
        self, text: str, index: _TokenIndex, closed: tuple[int, int], piece: tuple[int, int]
    ) -> tuple[int, int]:
        tail = self._overlap_start(text, index, closed)
        if tail is not None and index.count(tail, piece[1]) <= self.max_tokens:
            return (tail, piece[1])
        return piece

    def _overlap_start(self, text: str, index: _TokenIndex, span: tuple[int, int]) -> int | None:
        """Where the next chunk starts so it repeats about overlap_tokens of this one.

        The start snaps to a sentence start inside the overlap window when there
        is one, else to a word start, so overlap never begins mid-word.
        """
        if self.overlap_tokens == 0:
            return None
        first = index.first_token_at_or_after(span[0])
        last = index.first_token_at_or_after(span[1])
        if last - first <= self.overlap_tokens:
            return None
        window_start = index.starts[last - self.overlap_tokens]
        line = text.rfind("\n", 0, window_start) + 1
        # In code (indented lines) and tables (rows) the next chunk starts at a line.
        by_line = text[line : line + 1] in (" ", "\t", "|")
        for pattern in (_LINE_START,) if by_line else (_SENTENCE_START, _WORD_START):
            match = pattern.search(text, window_start, span[1])
            if match and match.end() < span[1]:
                return match.end()
        return None

    def _enforce_limit(
        self, text: str, index: _TokenIndex, spans: list[tuple[int, int, str]]
    ) -> list[tuple[int, int, str]]:
        """Re-count near-limit chunks on their own text; cut any that overflow."""
        checked = []
        for start, end, section in spans:
            if index.count(start, end) <= self.max_tokens - _RECHECK_MARGIN:
                checked.append((start, end, section))
                continue
            own = self._index_of(text[start:end])
            if len(own.starts) <= self.max_tokens:
                checked.append((start, end, section))
                continue
            for cut_start, cut_end in self._hard_cut(own, 0, end - start):
                checked.append((start + cut_start, start + cut_end, section))
        return checked


def _is_anchor(text: str, start: int, end: int) -> bool:
    return zlib.crc32(text[start:end].strip().encode("utf-8")) % 3 == 0


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without blank lines around it; a first line keeps its indentation
    (a chunk that starts inside code must not shift it left)."""
    first = start
    while first < end and text[first].isspace():
        first += 1
    line_start = text.rfind("\n", 0, first) + 1
    start = line_start if line_start >= start else first  # mid-line: from the word
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def context_title(title: str | None, uri: str) -> str | None:
    """The title that heads later chunks; none for a record whose title is its key."""
    _, _, key = uri.partition("#")
    if not title or (key and title == key):
        return None
    return title


# Bump when the splitting rules change, so stored chunks count as out of date.
# 3: context lines (title > heading path) on every chunk after the first.
# 4: `#` lines inside fenced code are not headings; no heading-only chunks;
#    tables cut between rows with their header repeated; indentation kept.
CHUNKER_VERSION = 4


def chunker_fingerprint(settings: Settings) -> str:
    """Identifies how chunks were cut; stored on every chunk.

    Made from every field of the chunking settings (a new setting is covered
    without anyone listing it here), the tokenizer that counts tokens (the
    embedding model's) and the splitting rules' version. A stored chunk with
    another fingerprint is re-chunked.
    """
    from rag_ingest.identity import fingerprint

    return fingerprint(
        {
            **settings.chunking.model_dump(mode="json"),
            "version": CHUNKER_VERSION,
            "tokenizer": settings.embedding.model_id,
        }
    )
