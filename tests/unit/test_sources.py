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


def test_the_local_lister_finds_what_fsspecs_glob_finds(tmp_path: Path) -> None:
    """The local fast path (one scandir per folder) against fsspec's own glob, on random
    trees with links, hidden files and deep folders, for patterns of every shape."""
    import random

    from rag_ingest.sources import _local_glob

    rng = random.Random(7)
    names = ["a", "b", "ab", ".hidden", "x.md", "y.txt", "deep", "Z.MD", "a b"]
    patterns = [
        "**/*.md", "*.md", "**/*", "*", "a/*.md", "a/**/*.txt", "*/x.md", "?b/*",
        "[ab]*/**", "x.md", "a/x.md", "**/deep/*", "**/.hidden", "nothing/**/*.md",
    ]  # fmt: skip
    fs = fsspec.filesystem("file")
    matched = links = 0
    for trial in range(25):
        root = tmp_path / f"tree{trial}"
        root.mkdir()
        folders = [root]
        for _ in range(rng.randint(5, 40)):
            parent = rng.choice(folders)
            name = rng.choice(names)
            target = parent / name
            if target.exists() or target.is_symlink():
                continue
            kind = rng.random()
            if kind < 0.3:
                target.mkdir()
                folders.append(target)
            elif kind < 0.85:
                target.write_text(name * rng.randint(0, 3))
            else:
                target.symlink_to(rng.choice(folders))
        for pattern in patterns:
            expected = {
                path: ("link" if info.get("islink") else info["type"], info.get("size"))
                for path, info in fs.glob(f"{root}/{pattern}", detail=True).items()
                if info.get("islink") or info["type"] == "file"
            }
            found = {
                path: ("link" if info.get("islink") else info["type"], info.get("size"))
                for path, info in _local_glob(str(root), pattern).items()
            }
            # A link's size is not read (it is refused, never opened).
            expected = {
                k: (kind, None if kind == "link" else size) for k, (kind, size) in expected.items()
            }
            assert found == expected, (trial, pattern)
            matched += len(found)
            links += sum(kind == "link" for kind, _ in found.values())
    assert matched > 500 and links > 10  # the trees really hold what is compared
