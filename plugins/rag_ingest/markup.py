"""The light text convention every parser writes and the chunker reads.

Headings are lines that start with `#` marks (one per level); paragraphs are
separated by blank lines; code is fenced with ``` (its lines kept verbatim,
indentation and `#` comments included, and never read as headings); tables
are Markdown pipe tables, a header row, a `---` rule, then one line per row.
One module holds the convention so the parsers and the chunker cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
# A fenced block: an opening fence of 3+ backticks or tildes, anything, the same fence.
FENCED_BLOCK = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
# A table: a header row, a rule, then its rows; each line starts and ends with a pipe.
TABLE_BLOCK = re.compile(
    r"^\|[^\n]*\|[ \t]*\n\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*\n(?:\|[^\n]*\|[ \t]*(?:\n|\Z))*",
    re.MULTILINE,
)


def fenced(code: str, language: str = "") -> str:
    """`code` as a fenced block, with a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`{3,}", code)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{language}\n{code.rstrip(chr(10))}\n{fence}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(rows: Sequence[Sequence[str]], header: bool = True) -> str:
    """Rows of cell texts as a Markdown table; the first row is the header.

    Ragged rows are padded, so every line has the same number of cells. With
    `header` false a blank header row is made, so no data row is promoted.
    """
    width = max((len(row) for row in rows), default=0)
    if width == 0:
        return ""
    padded = [[_cell(cell) for cell in row] + [""] * (width - len(row)) for row in rows]
    if not header:
        padded = [[""] * width, *padded]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in padded[1:]]
    return "\n".join(lines)


def spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [(match.start(), match.end()) for match in pattern.finditer(text)]


def inside(position: int, blocks: Sequence[tuple[int, int]]) -> bool:
    """Whether `position` falls inside one of the (sorted) block spans."""
    import bisect

    at = bisect.bisect_right(blocks, (position, float("inf"))) - 1
    return at >= 0 and blocks[at][0] <= position < blocks[at][1]


def headings(text: str) -> list[re.Match[str]]:
    """The heading lines of `text`, leaving out `#` lines inside fenced code."""
    code = spans(FENCED_BLOCK, text)
    return [match for match in HEADING.finditer(text) if not inside(match.start(), code)]


def only_heading(span: str) -> bool:
    """Whether `span` is one heading line and nothing else."""
    span = span.strip()
    return "\n" not in span and HEADING.fullmatch(span) is not None
