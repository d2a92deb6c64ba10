from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rag_ingest import parse_cache
from rag_ingest.sources import SourceFile

FILES = [
    SourceFile("/src/a.md", "a.md", 10, datetime(2026, 1, 1, tzinfo=UTC)),
    SourceFile("/src/b.md", "b.md", 20, datetime(2026, 1, 2, tzinfo=UTC)),
]
SETTINGS = {"location": "/src", "source": {"glob": "*.md"}}


def extraction(run_dir: Path, marker: str) -> Path:
    for name in parse_cache.OUTPUTS:
        (run_dir / name).mkdir(parents=True)
        (run_dir / name / "part-0.parquet").write_text(f"{name} {marker}")
    return run_dir


def key_of(
    files: list[SourceFile], settings: dict[str, object], prints: dict[str, str] | None = None
) -> str:
    prints = prints or parse_cache.parser_fingerprints()
    keys = parse_cache.reuse_keys(files, parse_cache.settings_digest(settings), prints)
    return parse_cache.cache_key(files, keys, settings)


def test_the_key_changes_with_any_file_setting_or_code() -> None:
    key = key_of(FILES, SETTINGS)
    assert key == key_of(list(FILES), dict(SETTINGS))
    touched = [FILES[0], replace(FILES[1], modified_at=datetime(2026, 1, 3, tzinfo=UTC))]
    grown = [FILES[0], replace(FILES[1], size=21)]
    refused = [FILES[0], replace(FILES[1], refused="a symlink")]
    for files, settings in (
        (touched, SETTINGS),
        (grown, SETTINGS),
        (FILES[:1], SETTINGS),  # a file gone
        (refused, SETTINGS),
        (FILES, {**SETTINGS, "source": {"glob": "*.txt"}}),
    ):
        assert key_of(files, settings) != key
    prints = parse_cache.parser_fingerprints()
    # The parser code of a format the files are in changes the key; another format's does not.
    assert key_of(FILES, SETTINGS, {**prints, "markdown": "upgraded"}) != key
    assert key_of(FILES, SETTINGS, {**prints, "docx": "upgraded"}) == key


def test_a_kept_extraction_is_restored_only_for_its_key(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    first = extraction(tmp_path / "run-1", "first")
    parse_cache.keep(folder, "k1", first, {"documents": 2})
    later = tmp_path / "run-2"
    later.mkdir()
    assert parse_cache.restore(folder, "other", later) is None
    assert not (later / "documents").exists()
    assert parse_cache.restore(folder, "k1", later) == {"documents": 2}
    restored = later / "documents" / "part-0.parquet"
    assert restored.read_text() == "documents first"
    # Linked, not copied: reuse costs no disk and no time.
    assert os.stat(restored).st_ino == os.stat(first / "documents" / "part-0.parquet").st_ino


def test_keeping_a_new_extraction_replaces_the_old_one_whole(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    parse_cache.keep(folder, "k1", extraction(tmp_path / "run-1", "first"), {"documents": 2})
    parse_cache.keep(folder, "k2", extraction(tmp_path / "run-2", "second"), {"documents": 3})
    target = tmp_path / "run-3"
    target.mkdir()
    assert parse_cache.restore(folder, "k1", target) is None
    assert parse_cache.restore(folder, "k2", target) == {"documents": 3}
    assert (target / "quarantine" / "part-0.parquet").read_text() == "quarantine second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run-1", "run-2", "run-3"]


def test_an_extraction_kept_half_way_is_never_used(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    parse_cache.keep(folder, "k1", extraction(tmp_path / "run-1", "first"), {"documents": 2})
    (folder / "key.json").unlink()  # as if the process died before the key was written
    target = tmp_path / "run-2"
    target.mkdir()
    assert parse_cache.restore(folder, "k1", target) is None
