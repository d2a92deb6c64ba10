"""Listing sources through fsspec: local paths, file:// URLs and other filesystems."""

from __future__ import annotations

from pathlib import Path

import fsspec

from rag_ingest.sources import list_files, read_bytes


def _tree(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.md").write_text("# One")
    (root / "two.txt").write_text("two")
    (root / "skip.bin").write_bytes(b"\x00")


def test_local_path_and_file_url_list_the_same_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    by_path = list_files(str(tmp_path), "**/*.md")
    by_url = list_files(f"file://{tmp_path}", "**/*.md")
    assert [f.relative_path for f in by_path] == ["a/one.md"]
    assert [f.relative_path for f in by_url] == ["a/one.md"]
    assert by_path[0].size == 5 and by_path[0].modified_at is not None
    assert read_bytes(by_path[0].uri) == b"# One"


def test_other_fsspec_filesystems_get_full_urls() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/docs/x.md", b"# X")
    fs.pipe("/bucket/docs/deep/y.md", b"# Y")
    files = list_files("memory://bucket/docs", "**/*.md")
    assert [f.relative_path for f in files] == ["deep/y.md", "x.md"]
    assert files[1].uri == "memory:///bucket/docs/x.md"
    assert read_bytes(files[1].uri) == b"# X"


def test_symlinks_are_not_followed_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.md").write_text("# ok")
    (root / "link.md").symlink_to(outside / "secret.md")
    (root / "dirlink").symlink_to(outside)
    listed = [f.relative_path for f in list_files(str(root), "**/*.md")]
    assert listed == ["ok.md"]
