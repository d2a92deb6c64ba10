from __future__ import annotations

import pytest

from rag_ingest.chunking import Chunker, context_title

DOC = """# Guide

Intro paragraph about the guide.

## Install

{install}

## Use

Short usage note.
"""


def _sentences(n: int) -> str:
    return " ".join(f"Sentence number {i} explains one more detail of the setup." for i in range(n))


def _count(tokenizer, text: str) -> int:  # type: ignore[no-untyped-def]
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_no_chunk_exceeds_the_limit_counted_by_the_tokenizer(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = DOC.format(install="\n\n".join(_sentences(12) for _ in range(5)))
    chunker = Chunker(tokenizer, max_tokens=64, overlap_tokens=8)
    chunks = chunker.split(text)
    assert len(chunks) > 5
    for chunk in chunks:
        assert _count(tokenizer, chunk.text) <= 64
        assert chunk.token_count == _count(tokenizer, chunk.text)
        assert text[chunk.char_start : chunk.char_end] == chunk.text
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_never_span_headings_and_keep_the_heading_path(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = DOC.format(install="Run make demo.")
    chunks = Chunker(tokenizer, max_tokens=200, overlap_tokens=0).split(text)
    assert [c.section for c in chunks] == ["Guide", "Guide > Install", "Guide > Use"]
    assert chunks[1].text == "## Install\n\nRun make demo."


def test_overlap_repeats_the_end_of_the_previous_chunk(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = _sentences(40)
    chunks = Chunker(tokenizer, max_tokens=60, overlap_tokens=20).split(text)
    assert len(chunks) >= 3
    for previous, current in zip(chunks, chunks[1:], strict=False):
        assert current.char_start < previous.char_end, "consecutive chunks must overlap"
        shared = text[current.char_start : previous.char_end]
        assert 0 < _count(tokenizer, shared) <= 20
        # overlap starts on a word boundary
        assert text[current.char_start - 1].isspace()


def test_no_overlap_when_configured_off(tokenizer) -> None:  # type: ignore[no-untyped-def]
    chunks = Chunker(tokenizer, max_tokens=60, overlap_tokens=0).split(_sentences(40))
    for previous, current in zip(chunks, chunks[1:], strict=False):
        assert current.char_start >= previous.char_end


def test_a_word_longer_than_the_limit_is_cut_inside(tokenizer) -> None:  # type: ignore[no-untyped-def]
    # BERT's tokenizer turns each CJK character into a token of its own, so
    # this is one 400-token "word" with no space to cut at.
    text = "start " + "知識庫" * 134 + " end"
    chunks = Chunker(tokenizer, max_tokens=50, overlap_tokens=0).split(text)
    assert len(chunks) > 3
    assert all(_count(tokenizer, c.text) <= 50 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == text.replace(" ", "")


WORDS = (
    "spark chunk token model vector store source quality gate airflow run report "
    "document section heading paragraph sentence overlap embed shard index search"
).split()


def _paragraphs(count: int, seed: int = 1) -> list[str]:
    import random

    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))).capitalize() + "."
        for _ in range(count)
    ]


@pytest.mark.parametrize("position", [1, 5, 12])
def test_chunk_ids_of_untouched_text_survive_an_inserted_paragraph(tokenizer, position) -> None:  # type: ignore[no-untyped-def]
    from rag_ingest.identity import chunk_ids

    paragraphs = _paragraphs(40)
    chunker = Chunker(tokenizer, max_tokens=120, overlap_tokens=16)
    before_text = "# One long section\n\n" + "\n\n".join(paragraphs)
    edited = (
        paragraphs[:position]
        + ["An inserted paragraph about something new."]
        + paragraphs[position:]
    )
    after_text = "# One long section\n\n" + "\n\n".join(edited)
    before = chunker.split(before_text)
    after = chunker.split(after_text)
    before_ids = chunk_ids("doc", [c.text for c in before])
    after_ids = chunk_ids("doc", [c.text for c in after])
    # Ids are stable across runs.
    assert chunk_ids("doc", [c.text for c in chunker.split(before_text)]) == before_ids
    # Chunks that end before the insertion point are untouched...
    insert_at = after_text.index("An inserted paragraph")
    untouched_before = [i for c, i in zip(after, after_ids, strict=True) if c.char_end < insert_at]
    assert set(untouched_before) <= set(before_ids)
    # ...and boundaries fall back into step within three chunks after it, so
    # every later chunk keeps its text and id.
    later = [i for c, i in zip(after, after_ids, strict=True) if c.char_start > insert_at]
    assert len(later) > 8
    assert set(later[3:]) <= set(before_ids)
    changed = set(after_ids) - set(before_ids)
    assert len(changed) <= 4, f"{len(changed)} of {len(after_ids)} chunks changed"


def test_empty_text_gives_no_chunks_and_bad_settings_are_refused(tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert Chunker(tokenizer, 10, 0).split("  \n\n ") == []
    with pytest.raises(ValueError, match="overlap_tokens"):
        Chunker(tokenizer, 10, 10)
    with pytest.raises(ValueError, match="max_tokens"):
        Chunker(tokenizer, 0, 0)


def test_later_chunks_carry_the_title_and_heading_path_within_the_limit(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = DOC.format(install="\n\n".join(_sentences(12) for _ in range(5)))
    chunks = Chunker(tokenizer, max_tokens=64, overlap_tokens=8).split(text, title="Guide")
    assert chunks[0].context == "" and chunks[0].text.startswith("# Guide")
    install = [c for c in chunks[1:] if c.section == "Guide > Install"]
    assert install and all(c.context == "Guide > Install" for c in install)
    for chunk in chunks:
        span = text[chunk.char_start : chunk.char_end]
        assert chunk.text == (f"{chunk.context}\n\n{span}" if chunk.context else span)
        assert chunk.token_count == _count(tokenizer, chunk.text) <= 64


def test_a_long_title_takes_at_most_a_quarter_of_the_limit(tokenizer) -> None:  # type: ignore[no-untyped-def]
    title = " ".join(f"word{i}" for i in range(100))
    chunks = Chunker(tokenizer, max_tokens=64, overlap_tokens=8).split(_sentences(40), title)
    assert len(chunks) > 2
    for chunk in chunks[1:]:
        assert title.startswith(chunk.context) and _count(tokenizer, chunk.context) <= 16
        assert _count(tokenizer, chunk.text) <= 64


def test_a_record_titled_by_its_key_gets_no_context_line() -> None:
    assert context_title("42", "corpus.jsonl#42") is None
    assert context_title("Aspirin and pain", "corpus.jsonl#42") == "Aspirin and pain"
    assert context_title("install", "guide/install.md") == "install"
    assert context_title("", "notes.txt") is None
