"""Listing a source with fsspec: what files exist, their size and modified time."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.core import url_to_fs


@dataclass(frozen=True)
class SourceFile:
    uri: str  # what a person can open: the full path or URL
    relative_path: str  # key inside the source root; the doc id derives from it
    size: int
    modified_at: datetime | None
    refused: str | None = None  # why it will not be read (a symlink); quarantined as such


def _modified(info: dict[str, Any]) -> datetime | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def list_files(location: str, pattern: str, with_refused: bool = False) -> list[SourceFile]:
    """Every file under `location` matching `pattern`, sorted by relative path.

    Symlinks and paths that resolve outside the root are never read: only
    what the glob finds under the root itself is returned. `with_refused`
    also returns symlinks, marked `refused`, so the run can quarantine them.
    """
    fs, root = url_to_fs(location)
    root = root.rstrip("/")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    found = fs.glob(posixpath.join(root, pattern), detail=True)
    files = []
    for path, info in sorted(found.items()):
        relative = posixpath.relpath(path, root)
        if relative.startswith(".."):
            continue
        refused = None
        if info.get("islink"):
            if not with_refused:
                continue
            refused = "a symlink: links are not followed, so nothing outside the source is read"
        elif info.get("type") != "file":
            continue
        uri = path if protocol in ("file", "local") else f"{protocol}://{path}"
        files.append(
            SourceFile(
                uri=uri,
                relative_path=relative,
                size=int(info.get("size") or 0),
                modified_at=_modified(info),
                refused=refused,
            )
        )
    return files


def read_bytes(uri: str) -> bytes:
    with fsspec.open(uri, "rb") as handle:
        data: bytes = handle.read()
    return data
