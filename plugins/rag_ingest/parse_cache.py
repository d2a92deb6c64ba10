"""The last extraction of a source, reused while nothing it read has changed.

Parsing is the extract stage's whole cost, and a Spark session's start-up
is most of it on a small source. What extract writes (documents/,
quarantine/, sensitive/) is a pure function of the files listed (their
paths, sizes and modified times), the source's settings, the sensitive-data
settings and the parsing code. So each extraction is kept under
`{staging}/{source}/parse-cache/<location>/` with a key over all of those;
a run whose key matches takes the kept output (hard links, no copy) and
starts no Spark at all. Any change to any of them, or the `full_resync`
param, parses afresh. A file rewritten with the very same size and modified
time is not seen as changed: the same rule as rsync's and make's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from rag_ingest.run import RunLayout
from rag_ingest.sources import SourceFile

log = logging.getLogger(__name__)

# What an extraction writes into its run folder.
OUTPUTS = RunLayout.EXTRACT_OUTPUTS
_KEY_FILE = "key.json"
_PACKAGE = Path(__file__).resolve().parent
# The code that decides what a file parses to.
_PARSING_CODE = ("extract.py", "sources.py", "sensitive.py", "identity.py", "parsing")


def code_fingerprint() -> str:
    """A digest of the parsing code, so an upgrade never serves an old parse."""
    digest = hashlib.sha256()
    for name in _PARSING_CODE:
        path = _PACKAGE / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def cache_key(files: list[SourceFile], settings: dict[str, Any]) -> str:
    """The key of one extraction: listing, settings and parsing code."""
    listing = [
        [
            f.uri,
            f.relative_path,
            f.size,
            f.modified_at.isoformat() if f.modified_at else None,
            f.refused,
            f.refused_reason,
        ]
        for f in files
    ]
    payload = json.dumps(
        {"listing": listing, "settings": settings, "code": code_fingerprint()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_dir(staging_dir: str, source: str, location: str) -> Path:
    """One kept extraction per source location (a templated source: per partition)."""
    return (
        Path(staging_dir)
        / source
        / "parse-cache"
        / hashlib.sha256(location.encode()).hexdigest()[:16]
    )


def _link_tree(source: Path, target: Path) -> None:
    """`source` at `target` by hard links (a copy where links cannot be made)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def restore(folder: Path, key: str, run_dir: Path) -> dict[str, Any] | None:
    """The kept extraction's counts, with its outputs linked into `run_dir`; None on a miss."""
    key_file = folder / _KEY_FILE
    if not key_file.is_file():
        return None
    kept = json.loads(key_file.read_text())
    if kept.get("key") != key or not all((folder / name).is_dir() for name in OUTPUTS):
        return None
    for name in OUTPUTS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
        _link_tree(folder / name, run_dir / name)
    counts: dict[str, Any] = kept["counts"]
    return counts


def keep(folder: Path, key: str, run_dir: Path, counts: dict[str, Any]) -> None:
    """Keep this run's extraction for the next run (replacing the one kept before).

    Written beside the old one and renamed into place: a crash leaves either
    the old extraction or the new, never half of one.
    """
    fresh = folder.with_name(folder.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for name in OUTPUTS:
        _link_tree(run_dir / name, fresh / name)
    (fresh / _KEY_FILE).write_text(json.dumps({"key": key, "counts": counts}))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    log.info("kept this extraction for the next run in %s", folder)
