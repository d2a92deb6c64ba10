"""Text fidelity of the Markdown and reStructuredText parsers, on documents in the
styles of real documentation corpora (MkDocs sites, PEPs, Sphinx projects)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from rag_ingest.chunking import Chunker
from rag_ingest.parsing import ParseContext, parse_file
from rag_ingest.parsing.includes import Includes


def in_source(root: Path, relative: str, data: str) -> tuple[bytes, ParseContext]:
    """A file written inside the source `root`, and the context the pipeline gives it."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path.read_bytes(), ParseContext(Includes(str(root), str(path)))


# ---------------------------------------------------------------- code blocks

MARKDOWN_WITH_CODE = """# Deploying

Set it up:

```python
# install the package
def main():
    if ready:
        # a comment, not a heading
        run(  # keep alignment
            "x",   "y")
```

    # an indented code block
    keep    this

## Next step

Done.
"""


def test_markdown_code_keeps_indentation_and_its_hash_lines_are_not_headings(
    tokenizer: object,
) -> None:
    doc = parse_file("deploy.md", MARKDOWN_WITH_CODE.encode())
    assert "        # a comment, not a heading\n" in doc.text
    assert '            "x",   "y")' in doc.text  # inner runs of spaces too
    assert "```\n# an indented code block\nkeep    this\n```" in doc.text
    chunks = Chunker(tokenizer, 30, 0).split(doc.text, doc.title)  # type: ignore[arg-type]
    sections = {chunk.section for chunk in chunks}
    assert sections == {"Deploying", "Deploying > Next step"}, sections
    assert any("        # a comment, not a heading" in chunk.text for chunk in chunks)


def test_rst_literal_blocks_keep_indentation_and_language(tokenizer: object) -> None:
    source = b"""Guide
=====

Example::

    # setup
    for item in items:
        if item:
            print(item)

.. code-block:: python
   :class: good

   # Correct:
   foo = long_function_name(var_one,
                            var_two)

Later
-----

Text.
"""
    doc = parse_file("guide.rst", source)
    assert "```\n# setup\nfor item in items:\n    if item:\n        print(item)\n```" in doc.text
    assert "```python\n# Correct:\nfoo = long_function_name(var_one,\n" in doc.text
    assert "                         var_two)" in doc.text
    chunks = Chunker(tokenizer, 20, 4).split(doc.text, doc.title)  # type: ignore[arg-type]
    assert {chunk.section for chunk in chunks} <= {"Guide", "Guide > Later"}


@pytest.mark.parametrize("seed", range(40))
def test_no_code_line_ever_becomes_a_section(tokenizer: object, seed: int) -> None:
    """Random documents: code blocks full of `#` lines, cut at random limits; every
    section path is made of real headings only, and code indentation survives."""
    rng = random.Random(seed)
    headings, parts = [], []
    for n in range(rng.randint(1, 5)):
        heading = f"Section {seed}-{n}"
        headings.append(heading)
        parts.append("#" * rng.randint(1, 3) + " " + heading)
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                lines = [
                    " " * rng.choice((0, 4, 8)) + rng.choice(("# note", "x = 1", "## not me"))
                    for _ in range(rng.randint(1, 12))
                ]
                fence = rng.choice(("```", "~~~", "````"))
                parts.append(f"{fence}{rng.choice(('', 'python', 'sh'))}\n" + "\n".join(lines)
                             + f"\n{fence}")  # fmt: skip
            else:
                parts.append(" ".join(rng.choice(("alpha", "beta", "gamma")) for _ in range(30)))
    doc = parse_file("random.md", "\n\n".join(parts).encode())
    limit = rng.randint(12, 80)
    chunks = Chunker(tokenizer, limit, limit // 4).split(doc.text, doc.title)  # type: ignore[arg-type]
    for chunk in chunks:
        assert all(part in headings for part in chunk.section.split(" > ") if part), chunk
        assert "note" not in chunk.section and "not me" not in chunk.section
    for line in re.findall(r"^ {4,8}\S.*$", doc.text, re.MULTILINE):
        assert any(line in chunk.text.splitlines() for chunk in chunks), line


# ---------------------------------------------------------------- titles


def test_a_pep_style_header_titles_the_document() -> None:
    source = b"""PEP: 9999
Title: A Frobnicator for the Standard Library
Author: A. Writer <a@example.org>,
        B. Writer <b@example.org>
Status: Draft
Post-History:

Abstract
========

Add a frobnicator.

Motivation
==========

Frobnication is hard.
"""
    doc = parse_file("pep-9999.rst", source)
    assert doc.title == "A Frobnicator for the Standard Library"
    assert "Author: A. Writer <a@example.org>, B. Writer <b@example.org>" in doc.text
    assert "# Abstract" in doc.text and "# Motivation" in doc.text


def test_a_paragraph_that_starts_like_a_field_is_not_a_header() -> None:
    doc = parse_file("note.rst", b"Note: this is prose.\n\nSection\n=======\n\nBody.\n")
    assert doc.title == "Section"
    assert "Note: this is prose." in doc.text


def test_markdown_title_from_front_matter_then_first_heading_without_attributes() -> None:
    fronted = parse_file("a.md", b"---\ntitle: From Front Matter\n---\n# Heading\n\nText.\n")
    assert fronted.title == "From Front Matter"
    plain = parse_file("b.md", b"# Install FastAPI { #install-fastapi }\n\nText.\n")
    assert plain.title == "Install FastAPI"
    assert plain.text.startswith("# Install FastAPI\n")
    broken = parse_file("c.md", b"---\ntitle: [unclosed\n---\n# Fallback\n\nText.\n")
    assert broken.title == "Fallback"


# ---------------------------------------------------------------- markup left raw


def test_attribute_lists_leave_titles_and_section_paths(tokenizer: object) -> None:
    source = b"""# Tutorial { #tutorial }

Intro.

## Path Parameters { #path-params .special data-x=1 }

Text about paths.

## A literal {brace} stays

Braces in prose {like this} stay.
"""
    doc = parse_file("tutorial.md", source)
    chunks = Chunker(tokenizer, 12, 0).split(doc.text, doc.title)  # type: ignore[arg-type]
    assert "{ #" not in doc.text and "#path-params" not in doc.text
    assert "Tutorial > Path Parameters" in {chunk.section for chunk in chunks}
    assert "{brace}" in doc.text and "{like this}" in doc.text


def test_admonitions_lose_their_markers_and_keep_their_text() -> None:
    source = b"""# Guide

!!! warning "Mind the gap"
    The body of a warning.

    A second paragraph.

??? note
    Collapsed by default.

/// tip | Use the CLI

It is faster.

///

/// details

Extra.

///

After.
"""
    doc = parse_file("guide.md", source)
    for marker in ("!!!", "???", "///"):
        assert marker not in doc.text
    assert "Mind the gap\n\nThe body of a warning.\n\nA second paragraph." in doc.text
    assert "```" not in doc.text  # an admonition's indented body is not code
    assert "Use the CLI\n\nIt is faster." in doc.text
    assert "Details\n\nExtra." in doc.text and "After." in doc.text


def test_sphinx_roles_keep_their_text() -> None:
    source = b"""API
===

Call :func:`os.path.join`, see :class:`~collections.abc.Mapping`, read
:ref:`the install guide <install>` and :doc:`usage`, :py:meth:`dict.get`,
:pep:`8` and :mod:`!json`.
"""
    doc = parse_file("api.rst", source)
    assert ":func:" not in doc.text and ":ref:" not in doc.text and "`" not in doc.text
    for text in ("os.path.join", "Mapping", "the install guide", "usage", "dict.get", "json"):
        assert text in doc.text, text
    assert "<install>" not in doc.text and "~" not in doc.text and "!json" not in doc.text
    assert "PEP 8" in doc.text


def test_rst_tables_become_pipe_tables_with_their_rows() -> None:
    source = b"""Tiers
=====

======  ==========  ========
Tier    Platform    Contact
======  ==========  ========
1       Linux       Ann
2       macOS       Bob
======  ==========  ========

+--------+-------+
| Name   | Value |
+========+=======+
| alpha  | 1     |
+--------+-------+
| beta   | two   |
| cont.  |       |
+--------+-------+
"""
    doc = parse_file("tiers.rst", source)
    assert "| Tier | Platform | Contact |\n| --- | --- | --- |\n| 1 | Linux | Ann |" in doc.text
    assert "| 2 | macOS | Bob |" in doc.text
    assert "| Name | Value |\n| --- | --- |\n| alpha | 1 |\n| beta cont. | two |" in doc.text


# ---------------------------------------------------------------- includes


def test_markdown_includes_resolve_inside_the_source(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "docs_src").mkdir(parents=True)
    (root / "docs_src" / "app.py").write_text("def app():\n    return 42\n")
    (root / "docs" / "snippets").mkdir(parents=True)
    (root / "docs" / "snippets" / "note.md").write_text("Shared **note** text.\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP SECRET")
    os.symlink(outside, root / "docs" / "link.md")
    data, context = in_source(
        root,
        "docs/guide/page.md",
        """# Page

{* ../../docs_src/app.py hl[2] *}

--8<-- "snippets/note.md"

--8<-- "../../../secret.txt"

{* /etc/passwd *}

--8<-- "link.md"

--8<-- "missing.md"
""",
    )
    doc = parse_file("docs/guide/page.md", data, context)
    assert "```py\ndef app():\n    return 42\n```" in doc.text
    assert "Shared note text." in doc.text
    assert "TOP SECRET" not in doc.text and "root:" not in doc.text
    assert "8<" not in doc.text and "{*" not in doc.text
    assert doc.notes["includes_read"] == 2
    assert doc.notes["includes_dropped"] == 4
    assert "../../../secret.txt" in doc.notes["includes_dropped_targets"]  # type: ignore[operator]


def test_rst_includes_resolve_inside_the_source_and_nesting_is_bounded(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "parts").mkdir(parents=True)
    (root / "parts" / "intro.rst").write_text("Included *intro* paragraph.\n")
    (root / "parts" / "loop.rst").write_text(".. include:: loop.rst\n\nLoop text.\n")
    (root / "example.py").write_text("def f():\n    return 1\n")
    data, context = in_source(
        root,
        "guide.rst",
        """Guide
=====

.. include:: parts/intro.rst

.. literalinclude:: example.py
   :language: python

.. include:: /etc/passwd

.. include:: <isonum.txt>

.. include:: parts/loop.rst
""",
    )
    doc = parse_file("guide.rst", data, context)
    assert "Included intro paragraph." in doc.text
    assert "```python\ndef f():\n    return 1\n```" in doc.text
    assert "root:" not in doc.text and "include::" not in doc.text
    assert "Loop text." in doc.text  # read up to the depth limit, then dropped
    dropped = doc.notes["includes_dropped_targets"]
    assert "/etc/passwd" in dropped and "<isonum.txt>" in dropped  # type: ignore[operator]


def test_without_a_source_root_every_include_is_dropped_and_counted() -> None:
    doc = parse_file("page.md", b'# Page\n\n--8<-- "a.md"\n\n{* b.py *}\n\nText.\n')
    assert doc.notes == {
        "includes_read": 0,
        "includes_dropped": 2,
        "includes_dropped_targets": ["a.md", "b.py"],
    }
    assert doc.text == "# Page\n\nText."
