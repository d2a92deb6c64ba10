"""Tables as chunking units: never cut inside a row, the header repeated, the budget kept."""

from __future__ import annotations

import random

import pytest

from rag_ingest import markup
from rag_ingest.chunking import Chunker


def random_table(rng: random.Random, rows: int, columns: int) -> list[list[str]]:
    words = ("alpha", "beta", "gamma", "delta", "42", "x|y", "Mañana", "2026-12-01")
    header = [f"Column {c}" for c in range(columns)]
    body = [
        [" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(columns)]
        for _ in range(rows)
    ]
    return [header, *body]


@pytest.mark.parametrize("seed", range(60))
def test_every_table_chunk_holds_whole_rows_under_its_header(tokenizer: object, seed: int) -> None:
    rng = random.Random(seed)
    rows = random_table(rng, rng.randint(5, 80), rng.randint(2, 4))
    table = markup.table(rows)
    header = "\n".join(table.split("\n")[:2])
    body_lines = table.split("\n")[2:]
    text = (
        "# Report\n\nAn introduction paragraph that says what the table holds.\n\n"
        f"{table}\n\nA closing paragraph after the table."
    )
    limit = rng.randint(100, 240)
    chunker = Chunker(tokenizer, limit, rng.randint(0, 20))  # type: ignore[arg-type]
    chunks = chunker.split(text, "Quarterly figures")
    seen: list[str] = []
    for chunk in chunks:
        own = len(tokenizer.encode(chunk.text, add_special_tokens=False).ids)  # type: ignore[attr-defined]
        assert own <= limit, (own, limit)
        assert chunk.token_count <= limit
        lines = chunk.text.split("\n")
        table_lines = [line for line in lines if line.startswith("| ") or line.startswith("|")]
        if not table_lines:
            continue
        assert "\n".join(table_lines[:2]) == header, chunk.text  # the header, every time
        for line in table_lines[2:]:
            assert line in body_lines, line  # a whole row, never a piece of one
            seen.append(line)
    assert set(seen) == set(body_lines)  # every row reaches a chunk


def test_a_small_table_stays_with_its_section(tokenizer: object) -> None:
    table = markup.table([["a", "b"], ["1", "2"]])
    text = f"# Small\n\nIntro.\n\n{table}\n\nOutro."
    chunks = Chunker(tokenizer, 200, 20).split(text, "Doc")  # type: ignore[arg-type]
    assert len(chunks) == 1 and table in chunks[0].text


def test_table_rows_after_the_first_chunk_carry_the_header_but_keep_true_offsets(
    tokenizer: object,
) -> None:
    rows = [["Name", "Role"]] + [[f"person {n}", f"role number {n}"] for n in range(60)]
    text = "# Staff\n\n" + markup.table(rows)
    chunks = Chunker(tokenizer, 64, 8).split(text, "Staff")  # type: ignore[arg-type]
    assert len(chunks) > 2
    for chunk in chunks[1:]:
        span = text[chunk.char_start : chunk.char_end]
        assert span.startswith("| person"), span[:40]  # the offsets are the row's own
        assert "| Name | Role |\n| --- | --- |\n" + span in chunk.text


def test_markup_table_escapes_pipes_and_pads_ragged_rows() -> None:
    table = markup.table([["a|b", "c"], ["only one"], ["x", "y", "z"]])
    assert table.split("\n") == [
        "| a\\|b | c |  |",
        "| --- | --- | --- |",
        "| only one |  |  |",
        "| x | y | z |",
    ]
    assert markup.TABLE_BLOCK.fullmatch(table)
    headless = markup.table([["1", "2"]], header=False)
    assert headless.split("\n")[2] == "| 1 | 2 |"  # no data row promoted to header


def test_a_header_too_wide_to_repeat_still_keeps_rows_whole(tokenizer: object) -> None:
    """A header over half the limit is not repeated; rows are still never cut."""
    header = [f"long column heading {n}" for n in range(5)]
    rows = [header] + [[str(n), "b", "c", "d", "e"] for n in range(40)]
    table = markup.table(rows)
    limit = 80
    head = "\n".join(table.split("\n")[:2])
    head_tokens = len(tokenizer.encode(head, add_special_tokens=False).ids)  # type: ignore[attr-defined]
    assert limit // 2 <= head_tokens < limit - 10  # too wide to repeat, narrow enough to fit
    chunks = Chunker(tokenizer, limit, 10).split("# T\n\n" + table, "T")  # type: ignore[arg-type]
    assert sum(head in chunk.text for chunk in chunks) == 1
    body_lines = set(table.split("\n"))
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            if line.startswith("|"):
                assert line in body_lines, line
