"""Per-file reuse keys and parse notes: what decides that a file is parsed again."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from rag_ingest import parse_cache
from rag_ingest.parsing import parse_file
from rag_ingest.parsing.notes import parse_notes_summary
from rag_ingest.sources import SourceFile

PACKAGE = Path(parse_cache.__file__).resolve().parent


def listed(name: str = "a.md", size: int = 10, refused: str | None = None) -> SourceFile:
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return SourceFile(uri=f"/src/{name}", relative_path=name, size=size, modified_at=when,
                      refused=refused)  # fmt: skip


def test_a_reuse_key_changes_with_the_listing_the_settings_and_the_parser() -> None:
    prints = parse_cache.parser_fingerprints()
    key = parse_cache.reuse_key(listed(), "settings", prints)
    assert key == parse_cache.reuse_key(listed(), "settings", prints)
    assert key != parse_cache.reuse_key(listed(size=11), "settings", prints)
    assert key != parse_cache.reuse_key(listed(), "other settings", prints)
    assert key != parse_cache.reuse_key(listed(), "settings", {**prints, "markdown": "new"})
    assert key == parse_cache.reuse_key(listed(), "settings", {**prints, "docx": "new"})
    assert parse_cache.reuse_key(listed(refused="a symlink"), "settings", prints) is None


def test_upgrading_one_parser_changes_only_its_formats_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "rag_ingest"
    shutil.copytree(PACKAGE, copy)
    monkeypatch.setattr(parse_cache, "_PACKAGE", copy)
    before = parse_cache.parser_fingerprints()
    assert len(set(before.values())) == len(before)  # one fingerprint per format
    word = copy / "parsing" / "word.py"
    word.write_text(word.read_text() + "\n# a parser upgrade\n")
    after = parse_cache.parser_fingerprints()
    assert {name for name in before if before[name] != after[name]} == {"docx"}
    shared = copy / "parsing" / "archives.py"
    shared.write_text(shared.read_text() + "\n# shared by every parser\n")
    assert all(v != after[k] for k, v in parse_cache.parser_fingerprints().items())


def test_parse_notes_sum_for_the_report_and_name_the_flagged_documents() -> None:
    rows = [
        ("/src/b.md", '{"includes_read": 2, "includes_dropped": 1, '
                      '"includes_dropped_targets": ["../x.md"]}'),
        ("/src/a.pdf", '{"ocr_pages": 3, "low_confidence_pages": [2, 3], "pages": []}'),
        ("/src/c.md", '{"includes_read": 1}'),
        ("/src/d.xlsx", '{"sheets_truncated_at_row": {"Orders": 50001}}'),
    ]  # fmt: skip
    summary = parse_notes_summary(rows)
    assert summary["includes_dropped"] == 1
    assert summary["ocr_pages"] == 3 and summary["low_confidence_pages"] == 2
    assert summary["noted_documents"] == [
        {"uri": "/src/a.pdf", "low_confidence_pages": [2, 3]},
        {"uri": "/src/b.md", "includes_dropped": 1},
        {"uri": "/src/d.xlsx", "sheets_truncated_at_row": {"Orders": 50001}},
    ]


def test_html_tables_become_pipe_tables() -> None:
    page = (
        b"<html><head><title>Prices</title></head><body><article><h1>Price list</h1>"
        b"<p>What we charge for every service in the catalogue, updated each month for all "
        b"of our customers.</p><table><thead><tr><th>Service</th><th>Price</th></tr></thead>"
        b"<tbody><tr><td>Hosting</td><td>10</td></tr><tr><td>Backup</td><td>5</td></tr>"
        b"</tbody></table><p>Prices exclude tax and may change during the contract.</p>"
        b"</article></body></html>"
    )
    from rag_ingest import markup

    doc = parse_file("prices.html", page)
    found = markup.TABLE_BLOCK.search(doc.text)
    assert found is not None
    assert found.group(0).splitlines()[0] == "| Service | Price |"
    assert "| Backup | 5 |" in found.group(0)


def test_a_parser_library_upgrade_changes_every_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = parse_cache.parser_fingerprints()
    versions = parse_cache._parser_library_versions()
    assert versions["python-docx"] == "1.2.0" and versions["docutils"] is not None
    monkeypatch.setattr(
        parse_cache, "_parser_library_versions", lambda: {**versions, "pypdf": "99.0"}
    )
    after = parse_cache.parser_fingerprints()
    assert all(before[name] != after[name] for name in before)


@pytest.mark.parametrize(
    ("reason", "kept"),
    [("corrupt_archive", True), ("empty_text", True), (None, True),
     ("parse_timeout", False), ("ocr_unavailable", False), ("unreadable", False)],
)  # fmt: skip
def test_rows_quarantined_for_a_transient_reason_are_parsed_again(
    reason: str | None, kept: bool
) -> None:
    from rag_ingest.extract import _with_reuse_key

    rows = _with_reuse_key([{"error_reason": reason, "parse_notes": None}], "k")
    assert (rows[0]["reuse_key"] == "k") is kept


def test_a_document_that_includes_files_is_parsed_again() -> None:
    from rag_ingest.extract import _with_reuse_key

    rows = _with_reuse_key([{"error_reason": None, "parse_notes": '{"includes_read": 1}'}], "k")
    assert rows[0]["reuse_key"] is None


def test_a_small_change_adds_its_rows_to_the_kept_ones_until_a_fifth_are_stale(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rag_ingest.config import load_settings
    from rag_ingest.extract_plan import Listing, plan_extract
    from tests.conftest import write_config

    config = write_config(tmp_path, tmp_path / "corpus")
    config.write_text(
        config.read_text().replace(
            "    access_labels: [public]\n",
            "    access_labels: [public]\n    parsing:\n      reuse_min_files: 1\n",
        )
    )
    settings = load_settings(str(config))
    source = settings.source("docs")
    location = settings.source_location(source)
    kept = parse_cache.file_rows_dir(parse_cache.cache_dir(settings.staging_dir, "docs", location))
    kept.mkdir(parents=True)
    pq.write_table(pa.table({"reuse_key": [f"k{n}" for n in range(10)]}), kept / "part-0.parquet")
    (kept / "_SUCCESS").touch()
    files = [listed(f"{n}.md") for n in range(10)]

    def plan(keys: list[str | None], reparse: bool = False):  # type: ignore[no-untyped-def]
        return plan_extract(settings, source, Listing(location, files, keys, {}), reparse)

    one_changed = plan([*(f"k{n}" for n in range(9)), "k9-changed"])
    assert [row[0] for row in one_changed.to_parse] == ["/src/9.md"]
    assert one_changed.dropped == ["k9"] and one_changed.appends_rows
    three_changed = plan([*(f"k{n}" for n in range(7)), "x7", "x8", "x9"])
    assert len(three_changed.dropped) == 3 and not three_changed.appends_rows  # rewritten whole
    everything = plan([f"k{n}" for n in range(10)], reparse=True)
    assert len(everything.to_parse) == 10 and not everything.appends_rows
