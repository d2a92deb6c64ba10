"""The credential and private-key detectors against a corpus of 45 secret formats.

The corpus (tests/secret_corpus.py) makes every secret up from a seed in its
issuer's documented shape and writes it in four kinds of surroundings. A
format counts as found only when none of its secret parts survive redaction.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from detect_secrets.plugins.keyword import (
    CONFIG_DENYLIST_REGEX_TO_GROUP,
    KeywordDetector,
)

from rag_ingest import credentials
from rag_ingest.sensitive import Scanner
from tests.secret_corpus import CONTEXTS, FORMATS, corpus

SCANNER = Scanner(["api_key", "private_key"])
CASES = corpus(seed=7, per_format=2)
SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


def test_the_corpus_spans_at_least_30_formats_in_every_context() -> None:
    assert len({case.name for _, case in CASES}) == len(FORMATS) >= 30
    assert {context for context, _ in CASES} == set(CONTEXTS)


@pytest.mark.parametrize(("context", "case"), CASES, ids=lambda v: getattr(v, "name", v))
def test_every_format_is_found_and_nothing_of_it_survives_redaction(context, case) -> None:
    redacted, counts = SCANNER.redact(case.text)
    assert counts, f"{case.name} in {context}: nothing found"
    assert [part for part in case.secrets if part in redacted] == []


def test_what_detect_secrets_finds_line_by_line_is_redacted_here() -> None:
    """The windows and whole-text scan must not lose a finding of the library's own
    line-by-line scan (its regex detectors and both keyword rule sets)."""
    keyword = KeywordDetector()
    for _, case in CASES:
        redacted, _ = SCANNER.redact(case.text)
        for line in case.text.splitlines():
            found = [s for p in credentials._regex_detectors() for s in p.analyze_string(line)]
            found += list(keyword.analyze_string(line))
            found += list(keyword.analyze_string(line, CONFIG_DENYLIST_REGEX_TO_GROUP))
            found = [s for s in found if not credentials._is_placeholder(s, line)]
            assert [s for s in found if s in redacted] == [], case.name


def _prose_with_secrets(rng: random.Random) -> str:
    words = ["the", "assay", "NF-kappaB", "immunohistochemistry", "p53", "2019", "x"]
    parts = []
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.1:
            parts.append(rng.choice(CASES)[1].text)
        elif roll < 0.2:
            parts.append("".join(rng.choice(string.printable) for _ in range(rng.randint(1, 60))))
        else:
            parts.append(rng.choice(words))
    return rng.choice([" ", "\n", ", "]).join(parts)


def test_scanning_only_the_windows_finds_what_scanning_everything_finds() -> None:
    rng = random.Random(11)
    for _ in range(300):
        text = _prose_with_secrets(rng)
        everywhere = set(credentials._rule_spans_in(text, 0, len(text)))
        assert set(credentials._rule_spans(text)) == everywhere, text


@pytest.mark.parametrize(
    "text",
    [
        'password = "${DB_PASSWORD}"',
        "password: <your password here>",
        "secret = get_secret(name)",
        "api_key = short",
        "password: ********",
        "The key findings were robust; secret handshakes are folklore.",
        "Resolved in https://example.org/papers/2019/immunohistochemistry-review.",
    ],
)
def test_placeholders_and_prose_are_not_taken_for_credentials(text: str) -> None:
    assert SCANNER.count(text) == {}


def test_metadata_and_title_strings_are_scanned_like_the_text() -> None:
    from rag_ingest.document_rows import SensitiveGate
    from rag_ingest.parsing import ParsedDocument

    secret = "ghp_" + "a1B2" * 9
    document = ParsedDocument(
        title=f"token {secret}",
        text="plain",
        format="jsonl",
        metadata={"owner": {"notes": [f"use {secret}"]}, "lang": "en", "n": 3},
    )
    gate = SensitiveGate("redact", ("api_key",), ("US",))
    redacted, counts = gate.apply(document)
    assert counts == {"api_key": 2}
    assert secret not in repr(redacted)
    assert redacted.metadata["lang"] == "en" and redacted.metadata["n"] == 3
    unchanged, counted = SensitiveGate("quarantine", ("api_key",), ("US",)).apply(document)
    assert counted == {"api_key": 2} and unchanged is document


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="the SciFact corpus is not beside the project")
def test_at_most_one_scifact_document_in_a_thousand_is_flagged() -> None:
    import json

    lines = (SCIFACT / "corpus.jsonl").read_text().splitlines()
    flagged = sum(
        1
        for line in lines
        if SCANNER.count((doc := json.loads(line))["title"] + "\n" + doc["text"])
    )
    assert flagged <= len(lines) // 1000
