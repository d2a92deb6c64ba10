"""Text fidelity on real documentation corpora: the share of chunks with each defect.

    python tests/benchmarks/bench_fidelity.py --corpus peps=/path/peps/peps:*.rst \\
        --corpus fastapi=/path/fastapi/docs/en/docs:**/*.md

Each corpus is `name=folder:glob`, fetched by whoever runs this (nothing is
committed). Every file is parsed by `parse_file` and cut by the chunker with
the packaged model's tokenizer, exactly as the pipeline does. The defects are
found from the *source* markup with the format's own reference parser
(markdown-it, docutils), not from our output, so a fix cannot hide its own
defect:

- code_heading: a chunk's section path holds a `#` line of a code block;
- heading_only: a chunk that is nothing but a heading line;
- indent_lost: a chunk holds an indented code line with its indentation
  collapsed (to one space or none);
- wrong_title: the chunk's document is titled other than its declared title
  (`Title:` field, front matter `title:`, else the first heading);
- table_rows_lost: a chunk holds cells of a table whose rows did not survive;
- raw_role: Sphinx role markup (`:func:` ...) left in a chunk;
- attr_list: a Markdown attribute list (`{ #anchor }`) in a chunk's title,
  section path or text outside code;
- admonition_marker: `///`, `!!!` or `???` block markers left in a chunk;
- include_verbatim: an include directive left in a chunk.

Runs against whatever code is importable, so the same script measures before
and after a change (PYTHONPATH=<old checkout>/plugins for before).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROLE = re.compile(r":[a-z][\w.+-]*(?::[\w.+-]+)*:`")
ATTR_LIST = re.compile(r"\{:?\s*[#.][\w-]+[^{}\n]*\}")
ADMONITION = re.compile(r"^\s*(?:/{3}|!{3}|\?{3}\+?)(?:\s|$)", re.MULTILINE)
INCLUDE = re.compile(r"\{\*.*?\*\}|^\s*\.\. (?:literal)?include::|--8<--", re.MULTILINE)
DEFECTS = (
    "code_heading",
    "heading_only",
    "indent_lost",
    "wrong_title",
    "table_rows_lost",
    "raw_role",
    "attr_list",
    "admonition_marker",
    "include_verbatim",
)


class SourceFacts:
    """What the source markup declares: code lines, tables, the title."""

    def __init__(self) -> None:
        self.code_comment_headings: set[str] = set()  # "# x" lines of code blocks, as "x"
        self.indented_code: list[str] = []  # code lines with 2+ leading spaces
        self.tables: list[list[list[str]]] = []  # rows of cells
        self.title: str | None = None


def markdown_facts(raw: str) -> SourceFacts:
    from markdown_it import MarkdownIt

    facts = SourceFacts()
    body = raw
    front = re.match(r"\A---\n(.*?)\n---\n", raw, re.DOTALL)
    if front:
        body = raw[front.end() :]
        title = re.search(r"^title:\s*(.+)$", front.group(1), re.MULTILINE)
        if title:
            facts.title = title.group(1).strip().strip("\"'")
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    row: list[str] | None = None
    table: list[list[str]] = []
    for i, token in enumerate(tokens):
        if token.type in ("fence", "code_block"):
            _code_facts(facts, token.content)
        elif token.type == "heading_open" and facts.title is None:
            text = tokens[i + 1].content
            facts.title = ATTR_LIST.sub("", text).strip()
        elif token.type == "table_open":
            table = []
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content.strip())
        elif token.type == "tr_close" and row is not None:
            table.append(row)
            row = None
        elif token.type == "table_close":
            facts.tables.append(table)
    return facts


def rst_facts(raw: str) -> SourceFacts:
    from docutils import nodes
    from docutils.core import publish_doctree

    facts = SourceFacts()
    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False}
    tree = publish_doctree(raw, settings_overrides=settings)
    title_field = re.search(r"\A(?:[A-Za-z-]+:.*\n(?:\s+.*\n)*)*?Title:\s*(.+)$", raw, re.M)
    if title_field:
        facts.title = title_field.group(1).strip()
    for node in tree.findall(nodes.literal_block):
        _code_facts(facts, node.astext())
    for node in tree.findall(nodes.table):
        rows = [
            [" ".join(entry.astext().split()) for entry in row.findall(nodes.entry)]
            for row in node.findall(nodes.row)
        ]
        facts.tables.append(rows)
    if facts.title is None:
        first = next(iter(tree.findall(nodes.title)), None)
        facts.title = " ".join(first.astext().split()) if first is not None else None
    return facts


def _code_facts(facts: SourceFacts, code: str) -> None:
    for line in code.splitlines():
        stripped = line.strip()
        if re.match(r"#{1,6}\s+\S", stripped):
            facts.code_comment_headings.add(stripped.lstrip("#").strip())
        if re.match(r"  +\S", line) and len(stripped) >= 8:
            facts.indented_code.append(line.rstrip())


def chunk_defects(chunk_text: str, section: str, title: str, facts: SourceFacts) -> set[str]:
    found: set[str] = set()
    headings = section.split(" > ") if section else []
    if any(h in facts.code_comment_headings for h in headings):
        found.add("code_heading")
    body = chunk_text.split("\n\n", 1)[1] if "\n\n" in chunk_text else chunk_text
    if re.fullmatch(r"#{1,6} [^\n]*", body.strip()):
        found.add("heading_only")
    lines = set(chunk_text.splitlines())
    for line in facts.indented_code:  # at most one space left of its indentation
        if line not in lines and (line.strip() in lines or " " + line.strip() in lines):
            found.add("indent_lost")
            break
    if facts.title and _plain(title) != _plain(facts.title):
        found.add("wrong_title")
    if _table_rows_lost(chunk_text, facts):
        found.add("table_rows_lost")
    outside_code = re.sub(r"```.*?```", "", chunk_text, flags=re.DOTALL)
    if ROLE.search(outside_code):
        found.add("raw_role")
    if ATTR_LIST.search(" ".join((title, section))) or ATTR_LIST.search(outside_code):
        found.add("attr_list")
    if ADMONITION.search(outside_code):
        found.add("admonition_marker")
    if INCLUDE.search(chunk_text):
        found.add("include_verbatim")
    return found


def _plain(title: str) -> str:
    """A title without inline markup marks and with single spaces."""
    return " ".join(re.sub(r"[`*]", "", title).split())


def _table_rows_lost(chunk_text: str, facts: SourceFacts) -> bool:
    """Cells of a source table in this chunk, but no row of it on one line."""
    lines = chunk_text.splitlines()
    for table in facts.tables:
        rows = [[c for c in row if len(c) >= 2] for row in table if len(row) >= 2]
        rows = [row for row in rows if len(row) >= 2]
        present = [row for row in rows if all(cell in chunk_text for cell in row)]
        if not present:
            continue
        if not any(
            all(cell in line for cell in row) and line.count("|") >= len(row) - 1
            for row in present
            for line in lines
        ):
            return True
    return False


def _context(folder: Path, path: Path) -> tuple[object, ...]:
    """The parse context the pipeline gives a file of this source, where the code
    measured has one (includes resolved inside `folder`); none before it did."""
    try:
        from rag_ingest.parsing import ParseContext
        from rag_ingest.parsing.includes import Includes
    except ImportError:
        return ()
    return (ParseContext(Includes(str(folder), str(path))),)


def measure(folder: Path, glob: str, chunker: object) -> dict[str, object]:
    from rag_ingest.parsing import ParseError, parse_file

    chunks = 0
    documents = 0
    failed: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    for path in sorted(folder.glob(glob)):
        relative = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        raw = data.decode("utf-8", "replace")
        facts = rst_facts(raw) if path.suffix == ".rst" else markdown_facts(raw)
        try:
            document = parse_file(relative, data, *_context(folder, path))
        except ParseError as error:
            failed[error.reason] += 1
            continue
        documents += 1
        for chunk in chunker.split(document.text, document.title):  # type: ignore[attr-defined]
            chunks += 1
            defects.update(chunk_defects(chunk.text, chunk.section, document.title, facts))
    return {
        "documents": documents,
        "not_parsed": dict(failed),
        "chunks": chunks,
        "share": {name: round(defects[name] / max(chunks, 1), 4) for name in DEFECTS},
        "count": {name: defects[name] for name in DEFECTS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", required=True, help="name=folder:glob")
    parser.add_argument("--max-tokens", type=int, default=240)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from rag_ingest.chunking import Chunker, load_tokenizer
    from rag_ingest.embedding import resolve_model_path

    chunker = Chunker(
        load_tokenizer(resolve_model_path("packaged:all-MiniLM-L6-v2")), args.max_tokens,
        args.overlap,
    )  # fmt: skip
    results = {}
    for spec in args.corpus:
        name, _, rest = spec.partition("=")
        folder, _, glob = rest.rpartition(":")
        results[name] = measure(Path(folder), glob, chunker)
        figures = results[name]
        print(f"{name}: {figures['documents']} documents, {figures['chunks']} chunks, "
              f"not parsed {figures['not_parsed']}")  # fmt: skip
        for defect in DEFECTS:
            count = figures["count"][defect]  # type: ignore[index]
            share = figures["share"][defect]  # type: ignore[index]
            print(f"  {defect:18} {count:6d} chunks  {share:7.2%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
